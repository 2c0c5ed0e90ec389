"""Sweeps end to end on tiny generated data: a multirun over seeds with parallel (joblib) workers, its job names,
TensorBoard runs and summary; failed jobs and the exit status; summarize_sweep.py; Optuna with SQLite storage; plus
the ranking, seed groups and tables on hand-made job folders."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_imdb_tree, make_pos_dir
from omegaconf import OmegaConf

from seqlab.sweep import callback
from seqlab.sweep.summary import summarize
from seqlab.sweep.tables import fmt, fmt_stat, to_markdown, write_summary

SMALL = ["model.embedding_dim=8", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
         "trainer.enable_progress_bar=false", "threads=1"]
N_TEST = 24  # reviews in the IMDB fixture's test split (12 per class)


def run_script(cwd: Path, *args: str, script: str = "train.py", check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(cwd / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def sweep_dirs(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs/multirun").iterdir())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, written out: sum / n and sqrt(sum of squared deviations / (n - 1))."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two hidden sizes x two seeds on the IMDB fixture, two joblib workers (which do not share the launching
    process's sys.argv), in the default outputs/multirun/<time>/; threads=auto, so each worker takes its own cores."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    cwd = tmp_path_factory.mktemp("sweep")
    make_imdb_tree(cwd / "imdb")
    small = [o for o in SMALL if not o.startswith("threads=")] + ["threads=auto"]
    proc = run_script(cwd, "-m", "hydra/launcher=local_parallel", "model.hidden_size=8,16", "seed=1,2",
                      "backend=custom", f"data.root={cwd / 'imdb'}", *small)
    (sweep_dir,) = sweep_dirs(cwd)
    return sweep_dir, proc


def test_jobs_are_named_by_what_varies_with_one_tensorboard_run_each(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep_dir, proc = sweep
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert proc.returncode == 0
    assert [p.name for p in jobs] == ["0_hidden_size=8,seed=1", "1_hidden_size=8,seed=2",
                                      "2_hidden_size=16,seed=1", "3_hidden_size=16,seed=2"]
    # TensorBoard: the events of each job in its own folder, so `--logdir <sweep>` lists exactly the job folders
    assert {p.parent for p in sweep_dir.rglob("events.out.tfevents.*")} == set(jobs)
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert Path(metrics["run_dir"]) == job
        acc = EventAccumulator(str(job), size_guidance={"images": 0})
        acc.Reload()
        # the selected checkpoint's score is the best point of the logged validation curve
        assert metrics["val_acc"] == pytest.approx(max(e.value for e in acc.Scalars("acc/val")))
        assert metrics["test_acc"] * N_TEST == pytest.approx(round(metrics["test_acc"] * N_TEST), abs=1e-4)


def test_parallel_workers_keep_their_own_cores_for_every_job(sweep):
    """Each job logs the cores threads=auto pinned it to; its TensorBoard file names the worker process (pid).
    Jobs of one worker share its cores, the two workers' cores do not overlap (which job runs where is up to loky)."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux CPU affinity and 2 cores")
    sweep_dir, _ = sweep
    cores_of: dict[str, set[str]] = {}
    for job in (p for p in sweep_dir.iterdir() if p.is_dir()):
        (line,) = [x for x in (job / "train.log").read_text().splitlines() if "parallel sweep worker" in x]
        pid = next(job.glob("events.out.tfevents.*")).name.split(".")[-2]
        cores_of.setdefault(pid, set()).add(line.rsplit("on cores ", 1)[1])
    assert all(len(cores) == 1 for cores in cores_of.values()), cores_of  # a worker keeps its share
    shares = [set(json.loads(next(iter(c)))) for c in cores_of.values()]
    assert len(shares) < 2 or not shares[0] & shares[1], cores_of  # one worker may have run every job


def test_summary_groups_seeds_and_ranks_settings_by_the_mean(sweep):
    sweep_dir, proc = sweep
    metrics = {p.name: json.loads((p / "metrics.json").read_text()) for p in sweep_dir.iterdir() if p.is_dir()}
    by_size: dict[str, list[dict]] = {"8": [], "16": []}
    for m in metrics.values():
        by_size[dict(o.split("=", 1) for o in m["overrides"])["model.hidden_size"]].append(m)
    stats = {size: mean_std([m["val_acc"] for m in ms]) for size, ms in by_size.items()}
    order = sorted(stats, key=lambda size: (-stats[size][0], size != "8"))  # ties: the first job's setting first

    rows = read_csv(sweep_dir / "summary.csv")
    assert [r["model.hidden_size"] for r in rows] == [order[0]] * 2 + [order[1]] * 2
    assert [r["seed"] for r in rows] == ["1", "2", "1", "2"] and [r["rank"] for r in rows] == ["1", "1", "2", "2"]
    for r in rows:
        assert float(r["val_acc"]) == pytest.approx(metrics[r["job"]]["val_acc"]) and r["seeds"] == "2"
        assert float(r["val_acc_mean"]) == pytest.approx(stats[r["model.hidden_size"]][0])
        assert float(r["val_acc_std"]) == pytest.approx(stats[r["model.hidden_size"]][1])
    md = (sweep_dir / "summary.md").read_text()
    mean, std = stats[order[0]]
    assert f"| 1 | {order[0]} | 2 | {mean:.4f}{f' ± {std:.4f}' if std else ''} |" in md  # equal seeds: no ± 0
    assert "2 settings × 2 seeds, all ok. Ranked by the mean over seeds of val_acc, the jobs' monitored metric" in md
    assert "Common overrides:" in md and "`backend=custom`" in md
    assert f"tensorboard --logdir {sweep_dir.resolve()}" in md
    assert md.strip().splitlines()[-3] in proc.stdout  # printed when the multirun ended


def test_hparams_session_has_params_and_final_metrics(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep_dir, _ = sweep
    (job,) = sweep_dir.glob("3_*")
    metrics = json.loads((job / "metrics.json").read_text())
    acc = EventAccumulator(str(job), size_guidance={"images": 0})
    acc.Reload()
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in acc.PluginTagToContent("hparams").items()}
    experiment = data["_hparams_/experiment"].experiment
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    hparams = {h.display_name: start[h.name] for h in experiment.hparam_infos if h.name in start}
    assert hparams["model.hidden_size"].number_value == 16 and hparams["model.backend"].string_value == "custom"
    assert hparams["model.lr"].number_value == pytest.approx(1e-3) and hparams["seed"].number_value == 2
    assert hparams["data"].string_value == "imdb"
    assert {h.display_name for h in experiment.hparam_infos if h.differs} == {"model.hidden_size", "seed"}
    shown = {m.name.tag for m in experiment.metric_infos}
    assert {"summary/val_acc", "summary/test_acc"} <= shown
    assert acc.Scalars("summary/val_acc")[-1].value == pytest.approx(metrics["val_acc"])
    assert acc.Scalars("summary/test_acc")[-1].value == pytest.approx(metrics["test_acc"])
    assert "test/confusion_matrix" in acc.Tags()["images"]  # the classification test figure


def test_summarize_sweep_script_on_an_existing_dir(sweep, tmp_path):
    src, _ = sweep
    copy = tmp_path / src.name
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("checkpoints", "summary.*"))
    proc = run_script(tmp_path, str(copy), "--metric", "test_loss", script="summarize_sweep.py")
    rows = read_csv(copy / "summary.csv")
    means = [float(r["test_loss_mean"]) for r in rows]
    assert len(rows) == 4 and means == sorted(means)  # losses: lowest first
    assert "Ranked by the mean over seeds of test_loss, lowest first" in proc.stdout
    assert proc.stdout == (copy / "summary.md").read_text()
    bad = run_script(tmp_path, str(copy), "--metric", "nope", script="summarize_sweep.py", check=False)
    assert bad.returncode == 2 and "error: Metric 'nope' is in no job's metrics.json" in bad.stderr
    csv_file = copy / "summary.csv"
    for args, message in [(["--mode", "up"], "error: argument --mode: invalid choice: 'up'"),
                          ([], "error: the following arguments are required: sweep_dir"),
                          ([str(csv_file)], f"error: {csv_file} is a file; pass the sweep folder")]:
        bad = run_script(tmp_path, *args, script="summarize_sweep.py", check=False)
        assert bad.returncode == 2 and bad.stderr.startswith(message) and bad.stderr.count("\n") == 1, bad.stderr


def test_failed_jobs_are_recorded_the_others_complete_and_the_sweep_exits_1(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    # dropout 1.5: a config error before training; SGD at lr inf: NaN weights (inf x 0), a NaN loss at step 2
    proc = run_script(tmp_path, "-m", "model.dropout=0.1,1.5", "model.optimizer.lr=0.1,inf",
                      f"data.root={tmp_path / 'imdb'}", "model.optimizer._target_=torch.optim.SGD",
                      "model.hidden_size=8", "data.batch_size=4", *SMALL, check=False)
    (sweep_dir,) = sweep_dirs(tmp_path)
    assert proc.returncode == 1  # a NaN loss is no user error
    assert f"error: 3 of 4 jobs failed; see {sweep_dir.relative_to(tmp_path) / 'summary.md'}" in proc.stderr
    rows = read_csv(sweep_dir / "summary.csv")
    assert [(r["job"], r["status"]) for r in rows] == [
        ("0_dropout=0.1,lr=0.1", "ok"), ("1_dropout=0.1,lr=inf", "failed"), ("2_dropout=1.5,lr=0.1", "failed"),
        ("3_dropout=1.5,lr=inf", "failed")]
    assert rows[0]["test_acc"] != "" and rows[1]["error"].startswith("FloatingPointError: train loss is nan")
    assert rows[2]["error"] == rows[3]["error"] == "ConfigError: model.dropout must be in [0, 1), got 1.5."
    error = json.loads((sweep_dir / "1_dropout=0.1,lr=inf/error.json").read_text())
    assert error["error_type"] == "FloatingPointError" and "Traceback" in error["traceback"]
    assert error["user_error"] is False and not (sweep_dir / "1_dropout=0.1,lr=inf/metrics.json").exists()
    assert json.loads((sweep_dir / "2_dropout=1.5,lr=0.1/error.json").read_text())["user_error"] is True
    md = (sweep_dir / "summary.md").read_text()
    assert md in proc.stdout and "| rank | model.dropout | model.optimizer.lr | status | val_acc |" in md
    assert md.splitlines()[2].startswith("4 jobs in ") and ", 1 ok, 3 failed. Ranked by val_acc" in md


def test_a_failed_single_run_exits_non_zero_with_error_json(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    proc = run_script(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", f"data.root={tmp_path / 'imdb'}",
                      "model.dropout=1.5", check=False)
    assert proc.returncode == 2 and "error: model.dropout must be in [0, 1)" in proc.stderr
    assert json.loads((tmp_path / "run/error.json").read_text())["error_type"] == "ConfigError"


def test_optuna_study_in_sqlite_continues_records_failed_trials_and_reports_them(tmp_path):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    make_pos_dir(tmp_path / "ewt")
    common = ["hparams_search=pos_optuna", f"data.root={tmp_path / 'ewt'}", "data.download=false",
              "hydra.sweeper.storage=sqlite:///outputs/optuna.db", *SMALL]  # outputs/ does not exist yet
    run_script(tmp_path, *common, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=1")
    first = sweep_dirs(tmp_path)[0]
    assert len(read_csv(first / "summary.csv")) == 2 and (first / "optimization_results.yaml").is_file()
    # trials are named by the search space (hydra.sweeper.params), not by the fixed overrides
    for job in (p for p in first.iterdir() if p.is_dir()):
        assert sorted(kv.split("=")[0] for kv in job.name.split("_", 1)[1].split(",")) == [
            "dropout", "hidden_size", "lr", "num_layers"]
    # Continue the same study with one more trial, forced to fail: the study grows and records it as FAIL, the
    # sweep exits 2 (its one failure is a config error), and dropout, fixed, leaves the trial's name.
    proc = run_script(tmp_path, *common, "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler.seed=2",
                      "model.dropout=1.5", check=False)
    assert proc.returncode == 2 and "error: 1 of 1 jobs failed" in proc.stderr
    study = optuna.load_study(study_name="seqlab_pos", storage=f"sqlite:///{tmp_path / 'outputs/optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert {"model.optimizer.lr", "model.hidden_size", "model.num_layers", "model.dropout"} <= set(
        study.trials[0].params)
    assert study.best_value == max(t.value for t in study.trials[:2])
    (job,) = (p for p in sweep_dirs(tmp_path)[1].iterdir() if p.is_dir())
    assert sorted(kv.split("=")[0] for kv in job.name.split("_", 1)[1].split(",")) == [
        "hidden_size", "lr", "num_layers"]
    # A new study whose only trial fails: Optuna raises (no completed trial) after the sweep; the summary is still
    # written and printed, and the status still says why.
    proc = run_script(tmp_path, *common, "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=fresh",
                      "model.dropout=1.5", check=False)
    third = sweep_dirs(tmp_path)[2]
    md = (third / "summary.md").read_text()
    assert proc.returncode == 2 and md in proc.stdout and md.splitlines()[2].endswith(", 1 failed.")  # nothing ranked
    assert read_csv(third / "summary.csv")[0]["status"] == "failed"


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
    assert cfg.hydra.callbacks.sweep_summary.metric is None  # rank by the jobs' monitored metric


# -- on hand-made job folders -------------------------------------------------------------------------------------


def _job(root: Path, name: str, metrics: dict | None = None, error: dict | None = None, overrides=()):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.json").write_text(json.dumps(error))


def acc(value: float, **more) -> dict:
    return {"val_acc": value, "monitor": "val_acc", "monitor_mode": "max", **more}


def test_summary_sorts_best_first_and_puts_failures_last(tmp_path):
    _job(tmp_path, "0_lr=0.1", acc(0.5, test_loss=0.3, wall_time_s=3.0), overrides=["lr=0.1", "x=1"])
    _job(tmp_path, "1_lr=0.2", error={"error_type": "ValueError", "message": "bad | value"},
         overrides=["lr=0.2", "x=1"])
    _job(tmp_path, "2_lr=0.3", acc(0.7, test_loss=0.4, wall_time_s=2.0), overrides=["lr=0.3", "x=1"])
    _job(tmp_path, "3_lr=0.4", overrides=["lr=0.4", "x=1"])  # still running, or killed
    (tmp_path / "multirun.yaml").write_text("{}\n")
    s = summarize(tmp_path)
    assert [r["job"] for r in s.rows] == ["2_lr=0.3", "0_lr=0.1", "1_lr=0.2", "3_lr=0.4"]
    assert [r["status"] for r in s.rows] == ["ok", "ok", "failed", "incomplete"] and s.columns == ["val_acc",
                                                                                                   "test_loss"]
    assert s.groups is None and (s.metric, s.mode, s.monitored) == ("val_acc", "max", True)
    assert [r["job"] for r in summarize(tmp_path, metric="test/loss").rows][:2] == ["0_lr=0.1", "2_lr=0.3"]
    md = write_summary(s)
    assert "| rank | lr | status | val_acc | test_loss | wall_time_s | job | error |" in md
    assert "|  | 0.2 | failed |  |  |  | 1_lr=0.2 | ValueError: bad \\| value |" in md  # no rank: failed
    assert "Common overrides: `x=1`" in md and "4 jobs in" in md and "2 ok, 1 failed, 1 incomplete." in md
    rows = read_csv(tmp_path / "summary.csv")
    assert rows[0]["x"] == "1" and [r["rank"] for r in rows] == ["1", "2", "", ""]


def test_summary_text_title_separators_and_no_empty_columns(tmp_path):
    _job(tmp_path, "0_a", acc(0.91234, num_parameters=1234567, tokens_per_s=14127.25, wall_time_s=1234.56),
         overrides=["model.hidden_size=256"])
    _job(tmp_path, "1_b", acc(0.5, num_parameters=2345, tokens_per_s=0.0001234, wall_time_s=5.0),
         overrides=["model.hidden_size=8"])
    md = write_summary(summarize(tmp_path))
    lines = md.splitlines()
    assert lines[0] == "# Sweep summary" and tmp_path.name not in lines[0]
    assert lines[2] == (f"2 jobs in `{tmp_path.resolve()}`, all ok. Ranked by val_acc, the jobs' monitored metric, "
                        "highest first.")
    assert lines[4] == "| rank | model.hidden_size | val_acc | num_parameters | tokens_per_s | wall_time_s | job |"
    assert lines[6] == "| 1 | 256 | 0.9123 | 1,234,567 | 14,127.2 | 1,234.6 | 0_a |"
    assert lines[7] == "| 2 | 8 | 0.5000 | 2,345 | 0.0001234 | 5.0 | 1_b |"
    assert "status" not in lines[4] and "error" not in lines[4]  # nothing failed
    assert lines[-1] == f"TensorBoard: `tensorboard --logdir {tmp_path.resolve()}` opens this sweep alone: one run " \
                        "per job, named by its folder, which holds its events. Per-epoch curves read best at " \
                        "`http://localhost:6006/?smoothing=0` with \"Ignore outliers in chart scaling\" unticked " \
                        "(Settings): with a few points a line, TensorBoard's defaults bend them and clip the best " \
                        "runs' last epochs."
    shutil.rmtree(tmp_path / "1_b")  # one job left: its overrides above the table, none as columns
    md = to_markdown(summarize(tmp_path))
    assert "Overrides: `model.hidden_size=256`" in md and "| rank | val_acc |" in md
    assert [fmt(v) for v in (None, 0.0, 3, 12345, 1e-5, float("nan"))] == ["", "0.0000", "3", "12,345", "1e-05", "nan"]
    # mean ± std to the mean's precision; integers per job (tokens/s) with a whole mean keep the decimal of the std
    assert [fmt_stat(v) for v in ((7978.0, 480.8129, True), (6650.33, 1294.69, True), (0.58, 0.0054, False),
                                  (64000.0, 0.0, True), (2.0, None, True))] == \
        ["7,978.0 ± 480.8", "6,650.3 ± 1,294.7", "0.5800 ± 0.0054", "64,000", "2"]


def test_ranking_follows_each_jobs_monitor(tmp_path):
    f1 = {"monitor": "val_f1", "monitor_mode": "max"}
    _job(tmp_path, "0_a", {"val_acc": 0.9, "val_f1": 0.6, **f1}, overrides=["a=0"])
    _job(tmp_path, "1_b", {"val_acc": 0.8, "val_f1": 0.7, **f1}, overrides=["a=1"])
    s = summarize(tmp_path)
    assert [r["job"] for r in s.rows] == ["1_b", "0_a"] and s.columns[0] == "val_f1" and s.monitored
    # a monitored loss is minimised; a metric the user names is ranked its own way
    for job, loss in (("0_a", 0.2), ("1_b", 0.1)):
        (tmp_path / job / "metrics.json").write_text(json.dumps({"val_acc": 1 - loss, "val_loss": loss,
                                                                "monitor": "val_loss", "monitor_mode": "min"}))
    assert [r["job"] for r in summarize(tmp_path).rows] == ["1_b", "0_a"]
    s = summarize(tmp_path, metric="val_acc")
    assert [r["job"] for r in s.rows] == ["1_b", "0_a"] and (s.mode, s.monitored) == ("max", False)
    assert [r["job"] for r in summarize(tmp_path, metric="val_acc", mode="min").rows] == ["0_a", "1_b"]
    # no monitor in metrics.json (written before the tasks declared one): val_acc, max
    (tmp_path / "0_a/metrics.json").write_text(json.dumps({"val_acc": 0.95}))
    (tmp_path / "1_b/metrics.json").write_text(json.dumps({"val_acc": 0.85}))
    s = summarize(tmp_path)
    assert [r["job"] for r in s.rows] == ["0_a", "1_b"] and (s.metric, s.mode) == ("val_acc", "max")


def test_jobs_with_different_monitors_are_listed_unranked_with_a_note(tmp_path):
    _job(tmp_path, "0_a", acc(0.7), overrides=["data=imdb"])
    _job(tmp_path, "1_b", {"val_f1": 0.9, "monitor": "val_f1", "monitor_mode": "max"}, overrides=["data=text"])
    _job(tmp_path, "2_c", acc(0.8), overrides=["data=pos"])
    s = summarize(tmp_path)
    assert s.metric is None and [r["job"] for r in s.rows] == ["0_a", "1_b", "2_c"]  # job order
    assert s.note == ("Not ranked: the jobs monitor different metrics (val_acc: jobs 0, 2; val_f1: job 1); rank them "
                      "by one with hydra.callbacks.sweep_summary.metric=<key> or scripts/summarize_sweep.py --metric "
                      "<key>.")
    md = to_markdown(s)
    assert s.note in md and "| data | val_acc | val_f1 | wall_time_s | job |" in md  # no rank column
    assert [r["job"] for r in summarize(tmp_path, metric="val_acc").rows] == ["2_c", "0_a", "1_b"]


def test_seed_groups_mean_std_and_number_of_seeds(tmp_path):
    runs = {("64", "1"): 0.80, ("64", "2"): 0.84, ("64", "3"): 0.82,  # mean 0.82, std 0.02
            ("128", "1"): 0.75, ("128", "2"): 0.85}  # mean 0.80, std sqrt(0.005)
    for num, ((size, seed), value) in enumerate(runs.items()):
        _job(tmp_path, f"{num}_hidden_size={size},seed={seed}", acc(value, num_parameters=1000 * int(size),
                                                                    coverage=0.25, wall_time_s=10.0 + num),
             overrides=[f"model.hidden_size={size}", f"seed={seed}", "data=pos"])
    _job(tmp_path, "5_hidden_size=128,seed=3", error={"error_type": "RuntimeError", "message": "out of memory"},
         overrides=["model.hidden_size=128", "seed=3", "data=pos"])
    s = summarize(tmp_path)
    assert [g.overrides for g in s.groups] == [{"model.hidden_size": "64", "data": "pos"},
                                               {"model.hidden_size": "128", "data": "pos"}]
    assert [g.n_ok for g in s.groups] == [3, 2] and [len(g.rows) for g in s.groups] == [3, 3]
    for group, size in zip(s.groups, ("64", "128")):
        mean, std, _ = group.stats["val_acc"]
        assert (mean, std) == pytest.approx(mean_std([v for (sz, _), v in runs.items() if sz == size]))
    assert s.groups[0].stats["val_acc"][:2] == pytest.approx((0.82, 0.02))
    assert s.groups[1].stats["val_acc"][:2] == pytest.approx((0.80, math.sqrt(0.005)))
    assert [r["overrides"]["seed"] for r in s.rows] == ["1", "2", "3", "1", "2", "3"]  # per seed, the failed last

    md = write_summary(s)
    assert "6 jobs in" in md and "2 settings × 3 seeds, 5 ok, 1 failed." in md
    assert "| rank | model.hidden_size | seeds | val_acc | num_parameters | coverage | wall_time_s |" in md
    assert "| 1 | 64 | 3 | 0.8200 ± 0.0200 | 64,000 | 0.2500 | 11.0 |" in md  # the same value in every job: as itself
    assert "| 2 | 128 | 2 of 3 | 0.8000 ± 0.0707 | 128,000 | 0.2500 | 13.5 |" in md
    assert ("| rank | model.hidden_size | seed | status | val_acc | num_parameters | coverage | wall_time_s | job | "
            "error |") in md
    assert "| 2 | 128 | 3 | failed |  |  |  |  | 5_hidden_size=128,seed=3 | RuntimeError: out of memory |" in md
    rows = read_csv(tmp_path / "summary.csv")
    assert [(r["rank"], r["seed"], r["seeds"]) for r in rows] == [("1", "1", "3"), ("1", "2", "3"), ("1", "3", "3"),
                                                                 ("2", "1", "2"), ("2", "2", "2"), ("2", "3", "2")]
    assert float(rows[3]["val_acc_std"]) == pytest.approx(math.sqrt(0.005)) and rows[3]["val_acc"] == "0.75"


def test_no_seed_groups_when_seed_does_not_repeat_a_setting(tmp_path):
    for num, (size, seed) in enumerate((("64", "1"), ("128", "2"))):  # seed varies, but no setting has two
        _job(tmp_path, f"{num}_x", acc(0.5 + num / 10), overrides=[f"model.hidden_size={size}", f"seed={seed}"])
    s = summarize(tmp_path)
    assert s.groups is None and [r["job"] for r in s.rows] == ["1_x", "0_x"]


def _multirun(tmp_path: Path, jobs: dict[str, dict | None]) -> Path:
    """The callback's view of a multirun: started, with job folders holding these error records (None: ok)."""
    sweep_dir = tmp_path / "multirun"
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}, "overrides": {"task": ["a=1,2"]}}})
    callback.SweepSummary().on_multirun_start(config)
    assert OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task == ["a=1,2"]  # for the jobs' names
    for name, error in jobs.items():
        _job(sweep_dir, name, None if error else acc(0.5), error, overrides=[f"a={name[0]}"])
    return sweep_dir


def test_exit_status_of_a_multirun(tmp_path, capsys):
    user = {"error_type": "ConfigError", "message": "x", "user_error": True}
    crash = {"error_type": "RuntimeError", "message": "y", "user_error": False}
    _multirun(tmp_path / "ok", {"0_a": None, "1_b": None})
    assert callback.exit_status(0) == 0 and "# Sweep summary" in capsys.readouterr().out
    _multirun(tmp_path / "user", {"0_a": None, "1_b": user})
    assert callback.exit_status(0) == 2 and "error: 1 of 2 jobs failed" in capsys.readouterr().err
    sweep_dir = _multirun(tmp_path / "mixed", {"0_a": user, "1_b": crash, "2_c": None})
    (sweep_dir / "3_d").mkdir()
    (sweep_dir / "3_d/metrics.json").write_text("{not json")  # killed while writing: incomplete
    assert callback.exit_status(0) == 1
    assert "error: 2 of 4 jobs failed and 1 did not finish" in capsys.readouterr().err
    # the summary is written once, when the multirun ends, or else (a sweeper that raised) by exit_status
    sweep_dir = _multirun(tmp_path / "end", {"0_a": None})
    callback.SweepSummary().on_multirun_end(OmegaConf.create({}))
    (sweep_dir / "summary.md").unlink()
    assert callback.exit_status(1) == 1 and not (sweep_dir / "summary.md").exists()
