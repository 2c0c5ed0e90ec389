"""Every experiment recipe in configs/experiment composes and runs one fast step on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_imdb_tree, make_pos_dir
from hydra import compose, initialize_config_dir
from ner_fixtures import make_conll_dir
from reference import hand_accuracy

from seqlab.models.module import SeqModel
from seqlab.train import build_datamodule, train

EXPERIMENTS = sorted(p.stem for p in (REPO / "configs/experiment").glob("*.yaml"))


def make_sst2_dir(root: Path) -> Path:
    """train.tsv (label, sentence), dev.tsv and test.tsv (label, content), as in ../shared/data/sst2."""
    from conftest import NEG_WORDS, POS_WORDS

    root.mkdir(parents=True)
    rows = [(1, f"a {w} movie") for w in POS_WORDS] + [(0, f"a {w} movie") for w in NEG_WORDS]
    for name, column in (("train", "sentence"), ("dev", "content"), ("test", "content")):
        (root / f"{name}.tsv").write_text(f"label\t{column}\n" + "".join(f"{y}\t{t}\n" for y, t in rows * 2))
    return root


def test_there_are_recipes():
    assert {"imdb_seed", "imdb_cpu", "imdb_best", "pos_cpu", "pos_best", "btc_cpu", "sst2_cpu"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_runs_one_step(name, tmp_path):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={name}"])
        dim = cfg.model.embedding_dim
        if cfg.data._target_.endswith("PosDataModule"):
            root = make_pos_dir(tmp_path / "data")
            data = [f"data.root={root}", "data.download=false"]
        elif cfg.data._target_.endswith("ConllDataModule"):  # data=btc's file names
            root = make_conll_dir(tmp_path / "data", names={s: f"btc.{s}" for s in ("train", "dev", "test")})
            data = [f"data.root={root}"]
        elif cfg.data._target_.endswith("TextDataModule"):  # data=sst2's files and column names
            root = make_sst2_dir(tmp_path / "data")
            data = [f"data.root={root}"]
        else:
            root = tmp_path / "data"
            make_imdb_tree(root)
            data = [f"data.root={root}", "data.download=false"]
        vectors = tmp_path / "vectors.txt"  # a tiny stand-in with the recipe's dimension: no download in tests
        vectors.write_text("".join(f"{w} " + " ".join(["0.1"] * dim) + "\n" for w in ("the", "movie", "dog")))
        cfg = compose("train", overrides=[
            f"experiment={name}", *data, f"model.vectors={vectors}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.output_dir={tmp_path / 'run'}", "model.hidden_size=8", "trainer.max_epochs=1",
            "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0"])
    metrics = train(cfg)
    assert json.loads((Path(tmp_path) / "run/metrics.json").read_text())["test_acc"] == metrics["test_acc"]
    # the one test batch's accuracy, counted by hand with the best checkpoint the run tested
    model = SeqModel.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu")
    dm = build_datamodule(cfg)
    dm.setup()
    if model.task.name == "spans":  # entity F1 of the one batch, by seqeval, in the files' scheme
        from seqeval.metrics import f1_score

        from seqlab.tasks.schemes import decode

        batch = next(iter(dm.test_dataloader()))
        model.eval()
        with torch.no_grad():
            preds = model.net.head.decode(model(batch["tokens"], batch["lengths"], batch.get("chars")),
                                          batch["lengths"])
        scheme = model.task.data_scheme
        n = batch["lengths"].tolist()
        pred = [decode(p[:k].tolist(), model.task.labels, scheme) for p, k in zip(preds, n)]
        gold = [decode(g[:k].tolist(), model.task.labels, scheme) for g, k in zip(batch["labels"], n)]
        assert metrics["test_f1"] == pytest.approx(f1_score(gold, pred), abs=1e-6)
        return
    assert metrics["test_acc"] == pytest.approx(hand_accuracy(model, dm.test_dataloader(), max_batches=1), abs=1e-6)
