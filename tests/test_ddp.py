"""DDP end to end: two CPU processes (gloo) through `trainer.strategy=ddp`, Lightning's launcher re-running the Hydra
script for rank 1. Checks the run completes once, the ranks split every epoch's training samples exactly, and the
reduced val/test metrics equal what one process computes on the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, add_unseen_test_words, make_pos_dir
from reference import hand_accuracy

DDP = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
RECORD = "+callbacks.samples._target_=record_samples.RecordSamples"  # a test aid from tests/, injected by config
TESTS_ON_PATH = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])}
SMALL = ["data=pos", "data.download=false", "data.batch_size=4", "model.embedding_dim=8", "model.hidden_size=8",
         "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("ddp")
    add_unseen_test_words(make_pos_dir(cwd / "ewt"))  # OOV accuracy: a real figure reduced over the ranks
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           **TESTS_ON_PATH}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), f"hydra.run.dir={cwd / 'run'}", f"data.root={cwd / 'ewt'}",
           RECORD, "threads=1", *SMALL, *DDP]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"DDP run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return cwd / "run"


def test_ddp_run_finishes_once_and_logs_from_rank_zero(ddp_run):
    metrics = json.loads((ddp_run / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    # rank 1 re-ran the script in the same run dir (its own log, no second .hydra record, no metrics of its own)
    assert (ddp_run / "train_ddp_process_1.log").is_file()
    assert (ddp_run / "train.log").read_text().count("Metrics:") == 1
    assert "Metrics:" not in (ddp_run / "train_ddp_process_1.log").read_text()
    assert not list(ddp_run.glob("metrics.json.*"))  # no stray temp files from a second writer
    (tb,) = (ddp_run / "tensorboard").iterdir()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"images": 0})
    acc.Reload()
    assert {"test/confusion_matrix", "test/per_class_accuracy"} <= set(acc.Tags()["images"])
    assert acc.Scalars("summary/test_acc")[-1].value == pytest.approx(metrics["test_acc"])


def test_each_training_sample_is_seen_exactly_once_per_epoch(ddp_run):
    ranks = [json.loads((ddp_run / f"samples/rank{r}.json").read_text()) for r in (0, 1)]
    n_train = 60  # make_pos_dir's training sentences
    assert set(ranks[0]) == set(ranks[1]) == {"0", "1"}
    for epoch in ("0", "1"):
        a, b = ranks[0][epoch], ranks[1][epoch]
        assert a and b and not set(a) & set(b)
        assert sorted(a + b) == list(range(n_train))
    assert ranks[0]["0"] != ranks[0]["1"]  # reshuffled per epoch


def test_reduced_metrics_equal_a_single_process_on_the_same_checkpoint(ddp_run, monkeypatch):
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from seqlab.models.module import SeqModel
    from seqlab.train import build_datamodule

    metrics = json.loads((ddp_run / "metrics.json").read_text())
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(ddp_run.parent / "cache"))
    cfg = OmegaConf.load(ddp_run / ".hydra/config.yaml")
    dm = build_datamodule(cfg)
    dm.setup()
    model = SeqModel.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, use_distributed_sampler=False)
    val = trainer.validate(model, datamodule=dm, verbose=False)[0]
    test = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert val["val/acc"] == pytest.approx(metrics["val_acc"], abs=1e-6)
    for key in ("acc", "macro_f1", "oov_acc"):
        assert test[f"test/{key}"] == pytest.approx(metrics[f"test_{key}"], abs=1e-6)
    # and counted by hand over the whole test split: the ranks' shards, reduced, are the whole
    assert metrics["test_acc"] == pytest.approx(hand_accuracy(model, dm.test_dataloader()), abs=1e-6)
    assert metrics["test_oov_acc"] == pytest.approx(hand_accuracy(model, dm.test_dataloader(), only="unseen"),
                                                    abs=1e-6)
    assert metrics["val_acc"] == pytest.approx(hand_accuracy(model, dm.val_dataloader()), abs=1e-6)


@pytest.mark.slow
def test_ddp_jobs_in_a_multirun(tmp_path):
    """Each job's rank 1 runs that job (not the whole sweep again) in that job's folder; the next job starts clean."""
    make_pos_dir(tmp_path / "ewt")
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           **TESTS_ON_PATH}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), "-m", "model.dropout=0.1,0.3",
           f"data.root={tmp_path / 'ewt'}", RECORD, "threads=1", *SMALL, *DDP]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()  # no second sweep started by a rank
    assert not (tmp_path / "outputs/runs").exists()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    for job in jobs:
        assert (job / "metrics.json").is_file() and (job / "train_ddp_process_1.log").is_file()
        ranks = [json.loads((job / f"samples/rank{r}.json").read_text()) for r in (0, 1)]
        assert sorted(ranks[0]["0"] + ranks[1]["0"]) == list(range(60))
    assert "| rank | model.dropout | val_acc |" in proc.stdout
