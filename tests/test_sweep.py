"""Sweeps end to end on tiny generated data: multirun and its summary, failed jobs, summarize_sweep.py, Optuna with
SQLite storage, TensorBoard HParams; plus the summary logic on hand-made job folders."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_imdb_tree, make_pos_dir

from seqlab.sweep import short_dirname, summarize, write_summary

SMALL = ["model.embedding_dim=8", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
         "trainer.enable_progress_bar=false"]


def run_script(cwd: Path, *args: str, script: str = "train.py", check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(cwd / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def only_sweep_dir(cwd: Path) -> Path:
    (sweep,) = (cwd / "outputs/multirun").iterdir()
    return sweep


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2x2 multirun (hidden size x LSTM backend) on the IMDB fixture, in the default outputs/multirun/<time>/."""
    cwd = tmp_path_factory.mktemp("sweep")
    make_imdb_tree(cwd / "imdb")
    proc = run_script(cwd, "-m", "model.hidden_size=8,16", "backend=torch,custom", f"data.root={cwd / 'imdb'}", *SMALL)
    return only_sweep_dir(cwd), proc


def test_multirun_runs_every_combination_in_its_own_dir(sweep):
    sweep_dir, _ = sweep
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2", "3"]
    combos = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert 0.0 <= metrics["val_acc"] <= 1.0 and Path(metrics["run_dir"]) == job
        overrides = dict(o.split("=", 1) for o in metrics["overrides"])
        combos.add((overrides["model.hidden_size"], overrides["backend"]))
        # TensorBoard: <sweep>/<job>/tensorboard/<run name from the overrides>/events...
        (run,) = (job / "tensorboard").iterdir()
        assert job.name == f"{job.name.split('_')[0]}_{run.name}" and f"backend={overrides['backend']}" in run.name
        assert list(run.glob("events.out.tfevents.*"))
    assert combos == {("8", "torch"), ("8", "custom"), ("16", "torch"), ("16", "custom")}


def test_multirun_writes_and_prints_a_sorted_summary(sweep):
    sweep_dir, proc = sweep
    rows = read_csv(sweep_dir / "summary.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {"model.hidden_size", "backend", "val_acc", "test_acc", "wall_time_s", "job"} <= set(rows[0])
    val = [float(r["val_acc"]) for r in rows]
    assert val == sorted(val, reverse=True)
    md = (sweep_dir / "summary.md").read_text()
    assert "| rank | job | model.hidden_size | backend | status | val_acc | test_acc |" in md
    assert "Common overrides:" in md and "`trainer.max_epochs=1`" in md
    assert md.strip().splitlines()[-1] in proc.stdout  # printed when the multirun ended


def test_hparams_session_has_params_and_final_metrics(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep_dir, _ = sweep
    job = next(p for p in sorted(sweep_dir.iterdir()) if p.name.startswith("3_"))
    metrics = json.loads((job / "metrics.json").read_text())
    (run,) = (job / "tensorboard").iterdir()
    acc = EventAccumulator(str(run), size_guidance={"images": 0})
    acc.Reload()
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in acc.PluginTagToContent("hparams").items()}
    hparams = data["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams["model/hidden_size"].number_value == 16 and hparams["model/backend"].string_value == "custom"
    assert hparams["model/optimizer/lr"].number_value == pytest.approx(1e-3)
    assert "data/name" in hparams and "seed" in hparams
    shown = {m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos}
    assert {"hparams/val_acc", "hparams/test_acc"} <= shown
    assert acc.Scalars("hparams/val_acc")[-1].value == pytest.approx(metrics["val_acc"])
    assert acc.Scalars("hparams/test_acc")[-1].value == pytest.approx(metrics["test_acc"])
    assert "test/confusion_matrix" in acc.Tags()["images"]  # the classification test figure


def test_summarize_sweep_script_on_an_existing_dir(sweep, tmp_path):
    src, _ = sweep
    copy = tmp_path / src.name
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("checkpoints", "summary.*"))
    proc = run_script(tmp_path, str(copy), "--metric", "test_acc", script="summarize_sweep.py")
    rows = read_csv(copy / "summary.csv")
    test = [float(r["test_acc"]) for r in rows]
    assert len(rows) == 4 and test == sorted(test, reverse=True)
    assert "sorted by test_acc (max first)" in proc.stdout and (copy / "summary.md").is_file()
    bad = run_script(tmp_path, str(copy), "--metric", "nope", script="summarize_sweep.py", check=False)
    assert bad.returncode == 2 and "error: Metric 'nope' is in no job's metrics.json" in bad.stderr


def test_failed_jobs_are_recorded_and_the_others_complete(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    # dropout 1.5: a config error before training; SGD at lr inf: NaN weights (inf x 0), a NaN loss at step 2
    run_script(tmp_path, "-m", "model.dropout=0.1,1.5", "model.optimizer.lr=0.1,inf", f"data.root={tmp_path / 'imdb'}",
               "model.optimizer._target_=torch.optim.SGD", "model.hidden_size=8", "data.batch_size=4", *SMALL)
    sweep_dir = only_sweep_dir(tmp_path)
    rows = {r["job"].split("_")[0]: r for r in read_csv(sweep_dir / "summary.csv")}
    assert rows["0"]["status"] == "ok" and float(rows["0"]["val_acc"]) >= 0
    assert rows["1"]["status"] == "failed" and rows["1"]["error"].startswith("FloatingPointError: train loss is nan")
    for num in ("2", "3"):
        assert rows[num]["status"] == "failed"
        assert rows[num]["error"] == "ConfigError: model.dropout must be in [0, 1), got 1.5."
    assert [r["status"] for r in read_csv(sweep_dir / "summary.csv")] == ["ok", "failed", "failed", "failed"]
    job = next(sweep_dir.glob("1_*"))
    error = json.loads((job / "error.json").read_text())
    assert error["error_type"] == "FloatingPointError" and "Traceback" in error["traceback"]
    assert not (job / "metrics.json").exists()


def test_a_failed_single_run_exits_non_zero_with_error_json(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    proc = run_script(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", f"data.root={tmp_path / 'imdb'}",
                      "model.dropout=1.5", check=False)
    assert proc.returncode == 2 and "error: model.dropout must be in [0, 1)" in proc.stderr
    assert json.loads((tmp_path / "run/error.json").read_text())["error_type"] == "ConfigError"


def test_optuna_study_in_sqlite_continues_and_records_failed_trials(tmp_path):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    make_pos_dir(tmp_path / "ewt")
    common = ["hparams_search=pos_optuna", f"data.root={tmp_path / 'ewt'}", "data.download=false",
              "hydra.sweeper.storage=sqlite:///outputs/optuna.db", *SMALL]  # outputs/ does not exist yet
    run_script(tmp_path, *common, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=1")
    first = only_sweep_dir(tmp_path)
    assert len(read_csv(first / "summary.csv")) == 2 and (first / "optimization_results.yaml").is_file()
    # Continue the same study with one more trial, forced to fail: the study grows and records it as FAIL.
    run_script(tmp_path, *common, "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler.seed=2", "model.dropout=1.5")
    study = optuna.load_study(study_name="seqlab_pos", storage=f"sqlite:///{tmp_path / 'outputs/optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert {"model.optimizer.lr", "model.hidden_size", "model.num_layers", "model.dropout"} <= set(
        study.trials[0].params)
    assert study.best_value == max(t.value for t in study.trials[:2])


@pytest.mark.parametrize("name", ["imdb_optuna", "pos_optuna"])
def test_optuna_configs_compose(name):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"model.optimizer.lr", "model.hidden_size", "model.num_layers", "model.dropout"}
    assert cfg.data._target_.split(".")[-1].lower().startswith(name.split("_")[0])


def _job(root: Path, name: str, metrics: dict | None = None, error: dict | None = None, overrides=()):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.json").write_text(json.dumps(error))


def test_summary_sorts_best_first_and_puts_failures_last(tmp_path):
    _job(tmp_path, "0_lr=0.1", {"val_acc": 0.5, "test_loss": 0.3, "wall_time_s": 3.0}, overrides=["lr=0.1", "x=1"])
    _job(tmp_path, "1_lr=0.2", error={"error_type": "ValueError", "message": "bad | value"},
         overrides=["lr=0.2", "x=1"])
    _job(tmp_path, "2_lr=0.3", {"val_acc": 0.7, "test_loss": 0.4, "wall_time_s": 2.0}, overrides=["lr=0.3", "x=1"])
    _job(tmp_path, "3_lr=0.4", overrides=["lr=0.4", "x=1"])  # still running, or killed
    (tmp_path / "multirun.yaml").write_text("{}\n")
    rows, columns = summarize(tmp_path)
    assert [r["job"] for r in rows] == ["2_lr=0.3", "0_lr=0.1", "1_lr=0.2", "3_lr=0.4"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "incomplete"] and columns == ["val_acc", "test_loss"]
    rows, _ = summarize(tmp_path, metric="test/loss")  # losses: smallest first
    assert [r["job"] for r in rows][:2] == ["0_lr=0.1", "2_lr=0.3"]
    md = write_summary(tmp_path, metric="val_acc")
    assert "| rank | job | lr | status | val_acc | test_loss | wall_time_s | error |" in md
    assert "Common overrides: `x=1`" in md and "ValueError: bad \\| value" in md
    assert read_csv(tmp_path / "summary.csv")[0]["x"] == "1"


def test_run_names_fit_in_a_file_name():
    from omegaconf import OmegaConf

    short = "model.hidden_size=8,model.optimizer.lr=0.0024159720788039436"
    assert short_dirname(short) == short  # short names are kept exactly
    long = ",".join(f"model.key{i}=0.{i}2345678901234" for i in range(8))
    rounded = short_dirname(long)
    assert len(rounded) <= 200 and "model.key3=0.3235" in rounded and "-" not in rounded
    cut = short_dirname(long * 3)
    assert len(cut.encode()) <= 200 and cut != short_dirname(long * 4)  # cut, with a hash of the whole
    # configs/train.yaml names sweep job folders through this resolver
    cfg = OmegaConf.create({"name": long * 3, "subdir": "${seqlab_dirname:${name}}"})
    assert cfg.subdir == cut
