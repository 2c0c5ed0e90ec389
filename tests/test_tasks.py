"""Tasks as plug-ins: a task defined here, in the test, trains, selects checkpoints and predicts with no edit to
seqlab; the metadata object round-trips; no code outside seqlab/tasks/ branches on a task's name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO
from hydra import compose, initialize_config_dir
from test_text import ROWS, write_csv

from seqlab.errors import ConfigError, DataError
from seqlab.inference import Predictor
from seqlab.metadata import Metadata
from seqlab.tasks import get_task, register_task
from seqlab.tasks.classification import Classification


@register_task("error_rate")
class ErrorRate(Classification):
    """Classification that reports its error rate and selects the checkpoint with the lowest one."""

    monitor, monitor_mode = "error", "min"

    def evaluator(self, split):
        from torchmetrics import MeanMetric

        class Errors(MeanMetric):
            def update(self, preds, labels):
                super().update((preds != labels).float())

            def compute(self):
                return {"error": super().compute()}

        return Errors()

    def metric_names(self, split):
        return ["error"]

    def test_report(self, evaluator, experiment):
        experiment.add_text("test/error_rate", f"{float(evaluator.compute()['error']):.4f}")

    def record(self, tokens, pred, confidence):
        return {"class": self.labels[int(pred)], "n_tokens": len(tokens)}

    def text(self, record):
        return f"<{record['class']}>"


def test_a_task_defined_outside_seqlab_trains_selects_and_predicts(tmp_path):
    from seqlab.train import train

    train_file = write_csv(tmp_path / "train.csv", ROWS * 3)
    test_file = write_csv(tmp_path / "test.csv", ROWS[:6])
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=text", f"data.train_file={train_file}", f"data.test_file={test_file}", "data.task=error_rate",
            "data.min_freq=1", "data.tokenizer_workers=1", f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.output_dir={tmp_path / 'run'}", "model.hidden_size=8", "model.embedding_dim=8",
            "model.optimizer.lr=0.05", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "threads=1"])
    metrics = train(cfg)
    written = json.loads((tmp_path / "run/metrics.json").read_text())
    assert written["monitor"] == "val_error" and written["monitor_mode"] == "min"
    assert set(written) >= {"val_error", "test_error", "test_loss"} and "test_acc" not in written
    best = Path(metrics["best_checkpoint"])
    assert best.name.endswith(f"-error{written['val_error']:.4f}.ckpt")
    # the lowest validation error of the epochs is the one kept (mode min): every epoch's score is in last.ckpt
    state = torch.load(metrics["last_checkpoint"], weights_only=True)
    scores = [v for k, v in state["callbacks"].items() if "val/error" in k][0]["best_model_score"]
    assert float(scores) == pytest.approx(written["val_error"])
    predictor = Predictor.from_checkpoint(best)
    (pred,) = predictor.predict(["A superb, moving film."])
    assert set(pred.record) == {"class", "n_tokens"} and pred.record["n_tokens"] == 6
    assert predictor.task.text(pred.record) == f"<{pred.record['class']}>"
    # the test error is the predictor's error on the raw test texts
    preds = predictor.predict([t for t, _ in ROWS[:6]])
    errors = sum(p.record["class"] != y for p, (_, y) in zip(preds, ROWS[:6])) / 6
    assert written["test_error"] == pytest.approx(errors)


def test_task_names_resolve_to_registered_builtin_or_import_path():
    assert get_task("error_rate") is ErrorRate
    assert get_task("classification") is Classification
    assert get_task("test_tasks:ErrorRate") is ErrorRate and get_task("test_tasks.ErrorRate") is ErrorRate
    with pytest.raises(ConfigError, match=r"data.task=ner is not a known task; use one of .*classification"):
        get_task("ner")
    with pytest.raises(ConfigError, match=r"data.task=torch.nn.Linear is not a seqlab.tasks.base.Task subclass"):
        get_task("torch.nn.Linear")
    with pytest.raises(ConfigError, match=r"data.task=nowhere.Task: cannot import it"):
        get_task("nowhere.Task")


def test_metadata_round_trips_and_refuses_other_formats():
    meta = Metadata(task="tagging", vocab=["<pad>", "<unk>", "a"], labels=["X", "Y"], chars=["<pad>", "<unk>", "a"],
                    tokenizer="spacy:de", lowercase=True, max_length=7, dataset="pos", task_options={})
    again = Metadata.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again == meta and (again.vocab_size, again.num_labels, again.num_chars) == (3, 2, 3)
    assert type(again.make_task()).__name__ == "Tagging"
    with pytest.raises(DataError, match="written by another version of seqlab"):
        Metadata.from_dict({"task": "tagging", "vocab": [], "labels": []})


def test_no_code_outside_the_task_modules_branches_on_a_task_name():
    """`if task == "tagging"` anywhere but seqlab/tasks/ would mean a task's behaviour leaked into shared code."""
    pattern = re.compile(r"""(==|!=|\bin\b)\s*\(?["'](classification|tagging|spans)["']|["'](classification|"""
                         r"""tagging|spans)["']\s*(==|!=)""")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "seqlab").rglob("*.py")
                 if "tasks" not in path.relative_to(REPO / "seqlab").parts
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
