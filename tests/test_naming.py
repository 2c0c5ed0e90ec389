"""Run names (seqlab.naming): what differs, paths as file stems, no path separator, short enough for a file name;
which overrides vary across a sweep, from the sweep's multirun.yaml and the sweeper's search space."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from seqlab.naming import fit_name, name_of, run_name, short_value, tensorboard_location, varying_keys

EXCLUDE = ["data.root", "paths.cache_dir", "trainer.log_every_n_steps"]


def job_hc(sweep_dir: Path | None, task: list[str], params: dict | None = None, mode: str = "MULTIRUN"):
    """A job's Hydra config, with the keys seqlab.naming reads."""
    return OmegaConf.create({
        "mode": mode, "overrides": {"task": task}, "sweep": {"dir": str(sweep_dir)}, "sweeper": {"params": params},
        "job": {"config": {"override_dirname": {"exclude_keys": EXCLUDE}}},
        "runtime": {"output_dir": str(sweep_dir / "0_job") if sweep_dir else "/nowhere"}})


def write_multirun_yaml(sweep_dir: Path, task: list[str]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": task}}}), sweep_dir / "multirun.yaml")


@pytest.mark.parametrize("value, expected", [
    ("../shared/data/glove/glove.6B.50d.txt.gz", "glove.6B.50d"),  # compression, then one extension
    ("/data/ud/en_ewt-ud-train.conllu", "en_ewt-ud-train"),
    ("/tmp/runs/ewt/", "ewt"),  # a folder: its name
    ("C:\\data\\reviews.csv", "reviews"),
    ("https://example.org/files/vectors.zip", "vectors"),
    ("0.0024159720788039436", "0.002416"),  # Optuna's samples: 4 significant digits
    ("1e-3", "1e-3"), ("128", "128"), ("glove.6B.50d", "glove.6B.50d"), ("custom", "custom"),
    ("{monitor: val/acc}", "{monitor: val_acc}"),  # not a path, but still no separator
])
def test_short_value(value, expected):
    assert short_value(value) == expected


def test_name_keeps_command_line_order_and_shortens_unambiguous_keys():
    overrides = ["model=lstm", "data.root=/x/imdb", "model.optimizer.lr=0.01", "model.hidden_size=8",
                 "+trainer.max_time=00:01:00", "trainer.log_every_n_steps=1"]
    assert name_of(overrides, exclude=set(EXCLUDE)) == "model=lstm,lr=0.01,hidden_size=8,max_time=00:01:00"
    # two keys ending alike keep their full names; the others are still shortened
    assert name_of(["model.dropout=0.1", "data.dropout=0.2", "seed=3"]) == "model.dropout=0.1,data.dropout=0.2,seed=3"
    assert name_of(["a.b=1", "c=2"], keys={"c"}) == "c=2"
    assert name_of(["data.root=/x"], exclude={"data.root"}) == ""


def test_long_names_are_cut_with_a_hash_of_the_whole():
    name = ",".join(f"key{i}=value{i}" for i in range(40))
    cut = fit_name(name, limit=100)
    assert len(cut.encode()) == 100 and cut.startswith(name[:91]) and cut[91] == "-"
    assert fit_name(name + "x", limit=100) != cut and fit_name("short", limit=100) == "short"
    overrides = [f"model.key{i}=0.{i}2345678901234" for i in range(40)]  # rounded, then cut
    long = name_of(overrides)
    assert len(long.encode()) <= 200 and long.startswith("key0=0.02346,key1=0.1235,")


def test_single_run_is_named_by_its_overrides_with_paths_as_stems():
    hc = job_hc(None, ["experiment=imdb_cpu", "model.vectors=../shared/data/glove/glove.6B.50d.txt.gz",
                       "data.root=/data/imdb"], mode="RUN")
    assert run_name(hc) == "experiment=imdb_cpu,vectors=glove.6B.50d"
    assert run_name(job_hc(None, [], mode="RUN")) == "defaults" and run_name(None) == "defaults"


def test_grid_sweep_job_is_named_by_what_varies(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["model.hidden_size=64,128", "seed=range(1,4)", "data.root=/x/imdb",
                                "trainer.max_epochs=2", "model.num_layers=choice(2)"])  # one choice: no variation
    hc = job_hc(sweep, ["model.hidden_size=128", "seed=2", "data.root=/x/imdb", "trainer.max_epochs=2",
                        "model.num_layers=2"])
    assert varying_keys(hc) == {"model.hidden_size", "seed"}
    assert run_name(hc) == "hidden_size=128,seed=2"


def test_sweep_over_paths_names_each_by_its_stem(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["model.vectors=../glove/glove.6B.50d.txt.gz,../glove/glove.6B.100d.txt.gz",
                                "data.root=/a/imdb,/b/imdb"])  # a swept location is what differs: named too
    hc = job_hc(sweep, ["model.vectors=../glove/glove.6B.100d.txt.gz", "data.root=/b/imdb"])
    assert run_name(hc) == "vectors=glove.6B.100d,root=imdb"
    assert os.sep not in run_name(hc) and "/" not in run_name(hc)


def test_optuna_job_is_named_by_its_search_space_less_what_the_command_line_fixes(tmp_path):
    """Optuna's search space is hydra.sweeper.params plus sweep values on the command line; a plain value given on
    the command line takes a key out of the search."""
    sweep = tmp_path / "sweep"
    params = {"model.optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "model.hidden_size": "choice(64, 128, 256)",
              "model.dropout": "interval(0.0, 0.6)"}
    write_multirun_yaml(sweep, ["hparams_search=pos_optuna", "model.dropout=0.3", "model.num_layers=1,2"])
    hc = job_hc(sweep, ["model.optimizer.lr=0.0024159720788039436", "model.hidden_size=64", "model.num_layers=2",
                        "hparams_search=pos_optuna", "model.dropout=0.3"], params)
    assert varying_keys(hc) == {"model.optimizer.lr", "model.hidden_size", "model.num_layers"}
    assert run_name(hc) == "lr=0.002416,hidden_size=64,num_layers=2"


def test_without_a_sweep_record_a_job_is_named_like_a_single_run(tmp_path):
    hc = job_hc(tmp_path / "absent", ["model.hidden_size=64", "data.root=/x", "seed=1"])
    assert varying_keys(hc) == set() and run_name(hc) == "hidden_size=64,seed=1"
    # ... and by the search space alone where the config has one (no command line to read)
    hc = job_hc(tmp_path / "absent", ["model.hidden_size=64", "seed=1"], {"model.hidden_size": "64,128"})
    assert run_name(hc) == "hidden_size=64"


def test_sweep_subdir_resolver_names_job_folders(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["model.hidden_size=8,16", "backend=custom"])
    hc = job_hc(sweep, ["model.hidden_size=16", "backend=custom"])
    cfg = OmegaConf.create({"hydra": OmegaConf.to_container(hc), "subdir": "3_${seqlab_run_name:}"})
    assert cfg.subdir == "3_hidden_size=16"
    train_yaml = OmegaConf.load(REPO / "configs/train.yaml")
    assert OmegaConf.to_container(train_yaml.hydra.sweep)["subdir"] == "${hydra.job.num}_${seqlab_run_name:}"


def test_tensorboard_location(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["seed=1,2"])
    job = job_hc(sweep, ["seed=2"])
    # a sweep job: events in its own folder, so `tensorboard --logdir <sweep>` lists `<num>_<name>` runs
    assert tensorboard_location(sweep / "0_job", job) == {"save_dir": str(sweep / "0_job"), "name": "", "version": ""}
    single = job_hc(None, ["seed=2", "data.root=/x"], mode="RUN")
    assert tensorboard_location(tmp_path / "run", single) == {"save_dir": str(tmp_path / "run"),
                                                               "name": "tensorboard", "version": "seed=2"}
    # paths.output_dir set in a sweep: not the job folder, so a named folder below it
    assert tensorboard_location(tmp_path / "elsewhere", job)["version"] == "seed=2"
