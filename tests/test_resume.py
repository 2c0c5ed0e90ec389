"""Resume: a run killed with SIGKILL mid-epoch and resumed with `ckpt_path=last` in its run directory ends with the
same weights and metrics as the uninterrupted run (CPU, trainer.deterministic=true); plus the pieces behind it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, add_unseen_test_words, make_imdb_tree, make_pos_dir

from seqlab.callbacks_resume import StepSeed, checkpoint_to_resume, resolve_ckpt_path
from seqlab.data.resumable import ResumableDataLoader
from seqlab.data.sampler import BucketBatchSampler
from seqlab.errors import ConfigError

STEPS_PER_EPOCH = 9  # 72 training reviews (80 minus the 10% validation carve) in batches of 8
TRAIN = ["data.batch_size=8", "model.embedding_dim=16", "model.hidden_size=16", "model.optimizer.lr=0.05",
         "trainer.max_epochs=3", "trainer.deterministic=true", "trainer.enable_progress_bar=false", "threads=1",
         "data.tokenizer_workers=1"]
# threshold 1 (absolute): no epoch improves on the first, so the rate halves after every later epoch
PLATEAU = ("model.scheduler={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,factor:0.5,patience:0,"
           "threshold:1.0,threshold_mode:abs}")
# name -> (data, overrides, training batches per epoch, the step to kill in)
CASES = {
    "imdb": ("imdb", [], STEPS_PER_EPOCH, STEPS_PER_EPOCH + 4),  # the 5th batch of the 2nd epoch
    # tagging, character BiLSTM, learning rate halved on a plateau (its state travels), random <unk> replacement
    "pos_chars_plateau": ("pos", ["model.char_encoder=lstm", "model.char_dim=8", "model.char_hidden=8", PLATEAU,
                                  "data.unk_replace=0.5", "data.batch_size=6"], 10, 10 + 4),
    # min_delta 1: no epoch after the first improves, so training stops after patience=2 more epochs, of 5; killed
    # in the 3rd epoch, the resumed run must remember the epoch it already waited
    "early_stopping": ("imdb", ["early_stopping={patience:2,min_delta:1.0}", "trainer.max_epochs=5"],
                       STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH + 4),
    "custom_backend": ("imdb", ["backend=custom"], STEPS_PER_EPOCH, STEPS_PER_EPOCH + 4),
}

# Runs scripts/train.py with each training step announced in $PROGRESS and slowed down, so the test can kill it
# at a known point. Nothing else changes: the model, data and callbacks are those of the real script.
SLOW = """
import os, runpy, sys, time
from seqlab.models.module import SeqModel
step = SeqModel.training_step
def slow_step(self, batch, batch_idx):
    with open(os.environ["PROGRESS"], "w") as f:
        f.write(str(self.global_step))
    time.sleep(float(os.environ["STEP_SLEEP"]))
    return step(self, batch, batch_idx)
SeqModel.training_step = slow_step
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def command(tmp: Path, run: str, *extra: str, slow: bool = False, data: str = "imdb") -> list[str]:
    script = [str(tmp / "slow.py")] if slow else []
    where = [f"data.root={tmp / 'imdb'}"] if data == "imdb" else ["data=pos", f"data.root={tmp / 'ewt'}",
                                                                   "data.download=false"]
    return [sys.executable, *script, str(REPO / "scripts/train.py"), f"hydra.run.dir={tmp / run}", *where, *TRAIN,
            *extra]


def env_for(tmp: Path, **kw: str) -> dict[str, str]:
    return {**os.environ, "SEQLAB_CACHE_DIR": str(tmp / "cache"), "PYTHONUNBUFFERED": "1", **kw}


def start(cmd: list[str], tmp: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=tmp, env=env_for(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-5000:]
    return out


def run_ok(cmd: list[str], tmp: Path) -> str:
    return finish(start(cmd, tmp))


def kill_at_step(cmd: list[str], tmp: Path, step: int) -> int:
    """Start `cmd` (slowed), SIGKILL it once it is training global step `step`; the step it was killed in."""
    progress = tmp / "progress"
    proc = subprocess.Popen(cmd, cwd=tmp, env=env_for(tmp, PROGRESS=str(progress), STEP_SLEEP="0.3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            text = progress.read_text() if progress.is_file() else ""
            if text and int(text) >= step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"not killed ({proc.returncode}):\n{proc.stderr.read()[-3000:]}"
    return int(progress.read_text())


def sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, case: str) -> tuple[dict, dict]:
    """Kill a run of CASES[case] with SIGKILL mid-epoch, resume it with ckpt_path=last; its metrics, final weights,
    optimizer rates and scheduler state equal an uninterrupted run's. Returns (the final last.ckpt, metrics)."""
    data, extra, steps, kill_step = CASES[case]
    make_imdb_tree(tmp_path / "imdb", n_per_class=40)
    add_unseen_test_words(make_pos_dir(tmp_path / "ewt"))
    (tmp_path / "slow.py").write_text(SLOW)
    every = ["checkpoint_every_n_steps=2", *extra]
    # The uninterrupted run, meanwhile (both may build the data cache: its writes are atomic).
    whole = start(command(tmp_path, "whole", *every, data=data), tmp_path)
    killed_in = kill_at_step(command(tmp_path, "run", *every, slow=True, data=data), tmp_path, step=kill_step)
    finish(whole)
    run = tmp_path / "run"
    assert not (run / "metrics.json").exists()
    saved = torch.load(run / "checkpoints/last-step.ckpt", weights_only=True)
    epoch = kill_step // steps
    assert saved["epoch"] == epoch and epoch * steps < saved["global_step"] <= killed_in < (epoch + 1) * steps
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == \
        saved["global_step"] - epoch * steps  # the loader's position in the epoch travels with the checkpoint

    out = run_ok(command(tmp_path, "run", *every, "ckpt_path=last", data=data), tmp_path)
    assert f"Restoring states from the checkpoint path at {run / 'checkpoints/last-step.ckpt'}" in out

    whole = json.loads((tmp_path / "whole/metrics.json").read_text())
    resumed = json.loads((run / "metrics.json").read_text())
    for key in ("val_acc", "test_acc", "test_loss", "test_macro_f1", "test_oov_acc", "epochs"):
        assert resumed.get(key) == whole.get(key), key
    assert Path(resumed["best_checkpoint"]).name == Path(whole["best_checkpoint"]).name
    a = torch.load(tmp_path / "whole/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    assert a["lr_schedulers"] == b["lr_schedulers"]  # the plateau schedule's counters and its current rate
    assert [g["lr"] for g in a["optimizer_states"][0]["param_groups"]] == \
        [g["lr"] for g in b["optimizer_states"][0]["param_groups"]]
    return a, whole


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    last, whole = sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, "imdb")
    assert last["global_step"] == 3 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_exact_resume_pos_with_char_encoder_and_plateau_schedule(tmp_path):
    last, whole = sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, "pos_chars_plateau")
    # halved after the 2nd epoch (the one killed and resumed) and the 3rd: a lost step would show in the weights
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == 0.05 / 4
    assert any(".char_encoder." in name for name in last["state_dict"])  # its weights are compared too


@pytest.mark.slow
def test_exact_resume_keeps_early_stopping_state(tmp_path):
    last, whole = sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, "early_stopping")
    assert whole["epochs"] == 3 and last["global_step"] == 3 * STEPS_PER_EPOCH  # stopped early, of 5 epochs
    (state,) = [v for k, v in last["callbacks"].items() if k.startswith("EarlyStopping")]
    assert state["wait_count"] == 2 and state["stopped_epoch"] == 2


@pytest.mark.slow
def test_exact_resume_custom_backend(tmp_path):
    last, whole = sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, "custom_backend")
    assert last["global_step"] == 3 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_sigkill_without_step_checkpoints_resumes_from_the_epoch_end(tmp_path):
    """checkpoint_every_n_steps=null: the killed epoch is re-run from its start (last.ckpt, written at the previous
    epoch's end); the result is the same, the plateau schedule's step of that epoch included."""
    make_imdb_tree(tmp_path / "imdb", n_per_class=40)
    (tmp_path / "slow.py").write_text(SLOW)
    every = ["checkpoint_every_n_steps=null", PLATEAU]
    run_ok(command(tmp_path, "whole", *every), tmp_path)
    kill_at_step(command(tmp_path, "run", *every, slow=True), tmp_path, STEPS_PER_EPOCH + 4)
    out = run_ok(command(tmp_path, "run", *every, "ckpt_path=last"), tmp_path)
    assert "checkpoints/last.ckpt" in out and not (tmp_path / "run/checkpoints/last-step.ckpt").exists()
    whole = json.loads((tmp_path / "whole/metrics.json").read_text())
    resumed = json.loads((tmp_path / "run/metrics.json").read_text())
    assert (resumed["val_acc"], resumed["test_acc"]) == (whole["val_acc"], whole["test_acc"])
    a = torch.load(tmp_path / "whole/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["optimizer_states"][0]["param_groups"][0]["lr"] == 0.05 / 4
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name


# -- the pieces -------------------------------------------------------------------------------------------------------

def test_batch_sampler_resumes_inside_the_saved_epoch_only():
    s = BucketBatchSampler(torch.arange(1, 41), batch_size=4, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.resume_at(epoch=2, batches_done=3)
    assert list(s) == full[3:]
    s.set_epoch(3)
    assert len(list(s)) == len(full)  # the next epoch is whole


def test_resumable_loader_state_round_trip():
    data = list(range(40))

    def loader():
        return ResumableDataLoader(data, batch_sampler=BucketBatchSampler(torch.ones(40), batch_size=4, seed=1))

    a = loader()
    a.batch_sampler.set_epoch(1)
    it = iter(a)
    seen = [next(it).tolist() for _ in range(4)]
    state = a.state_dict()
    assert state == {"epoch": 1, "batches": 4, "num_batches": 10}
    b = loader()
    b.load_state_dict(state)
    b.batch_sampler.set_epoch(1)  # Lightning calls this after load_state_dict, before the first batch
    rest = [x.tolist() for x in b]
    assert seen + rest == loader_batches(1)  # together, the whole epoch once, in order
    assert b.state_dict()["batches"] == 10
    with pytest.raises(ConfigError, match="saved with 9 training batches per epoch, this run has 10"):
        loader().load_state_dict({**state, "num_batches": 9})


def test_random_choices_while_collating_repeat_on_resume():
    """A collate that draws random numbers (data.unk_replace does) gives the same batches after a resume."""

    def loader():
        return ResumableDataLoader(list(range(40)), batch_sampler=BucketBatchSampler(torch.ones(40), 4, seed=1),
                                   collate_fn=lambda items: torch.tensor(items) + 1000 * torch.randint(9, (1,)))

    a = loader()
    a.batch_sampler.set_epoch(2)
    whole = [x.tolist() for x in a]
    b = loader()
    b.load_state_dict({"epoch": 2, "batches": 6, "num_batches": 10})
    b.batch_sampler.set_epoch(2)
    torch.rand(123)  # whatever drew random numbers before the resumed epoch started
    assert [x.tolist() for x in b] == whole[6:]


def loader_batches(epoch: int) -> list[list[int]]:
    s = BucketBatchSampler(torch.ones(40), batch_size=4, seed=1)
    s.set_epoch(epoch)
    return list(s)


def test_step_seed_depends_on_the_step_alone():
    class Trainer:
        global_rank, global_step = 0, 5

    cb = StepSeed(seed=7)
    cb.on_train_batch_start(Trainer(), None, None, 0)
    a = torch.rand(3)
    torch.rand(100)  # whatever else drew numbers in between
    cb.on_train_batch_start(Trainer(), None, None, 0)
    assert torch.equal(torch.rand(3), a)
    Trainer.global_step = 6
    cb.on_train_batch_start(Trainer(), None, None, 0)
    assert not torch.equal(torch.rand(3), a)


def test_ckpt_path_must_exist(tmp_path):
    assert resolve_ckpt_path(None) is None and resolve_ckpt_path("last") == "last"
    with pytest.raises(ConfigError, match="ckpt_path .*missing.ckpt is not a file"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"))


def test_ckpt_path_last_is_the_newest_last_checkpoint(tmp_path):
    assert checkpoint_to_resume("last", tmp_path) is None and checkpoint_to_resume(None, tmp_path) is None
    for i, name in enumerate(["last-step.ckpt", "last.ckpt", "best-epoch00-acc0.5.ckpt"]):
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert checkpoint_to_resume("last", tmp_path) == str(tmp_path / "last.ckpt")  # as Lightning: the newest
    os.utime(tmp_path / "last-step.ckpt", (2000, 2000))
    assert checkpoint_to_resume("last", tmp_path) == str(tmp_path / "last-step.ckpt")


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]


def test_a_checkpoint_of_another_model_or_data_is_one_clear_line(tmp_path):
    """ckpt_path whose model does not fit the run: one line naming what differs (Lightning's load_state_dict would
    raise a RuntimeError traceback after the data is prepared), exit 2; a model setting is caught before the data."""
    make_imdb_tree(tmp_path / "imdb", n_per_class=10)
    small = [o for o in TRAIN if not o.startswith(("model.hidden_size=", "trainer.max_epochs="))] + [
        "model.hidden_size=8", "trainer.max_epochs=1"]
    run_ok([*command(tmp_path, "small")[:-len(TRAIN)], *small], tmp_path)
    ckpt = tmp_path / "small/checkpoints/last.ckpt"
    todo = (f"resume with the settings of the run that wrote it ({tmp_path / 'small/.hydra/overrides.yaml'}), or "
            "leave ckpt_path out to train afresh.")
    env = {**env_for(tmp_path), "SEQLAB_CACHE_DIR": str(tmp_path / "cache2")}
    bigger = subprocess.run(command(tmp_path, "bigger", f"ckpt_path={ckpt}"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # TRAIN: model.hidden_size=16
    assert (bigger.returncode, error_lines(bigger)) == (2, [
        f"error: ckpt_path {ckpt} holds another model than this run's: model.hidden_size is 8 there, 16 here; "
        f"{todo}"]), bigger.stderr[-3000:]
    assert not (tmp_path / "cache2").exists()  # refused before any data was prepared

    rows = ["text,label"] + [f"{w} film {w},{label}" for w, label in [("good", "pos"), ("bad", "neg")] * 10]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    text = [sys.executable, str(REPO / "scripts/train.py"), f"hydra.run.dir={tmp_path / 'text'}", "data=text",
            "data.train_file=train.csv", *small]
    run_ok(text, tmp_path)
    ckpt = tmp_path / "text/checkpoints/last.ckpt"
    todo = todo.replace("small/", "text/")
    imdb = subprocess.run([*command(tmp_path, "imdb")[:-len(TRAIN)], *small, f"ckpt_path={ckpt}"], cwd=tmp_path,
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    vocab = len(torch.load(ckpt, weights_only=True)["seqlab"]["metadata"]["vocab"])
    imdb_vocab = len(torch.load(tmp_path / "small/checkpoints/last.ckpt", weights_only=True)["seqlab"]["metadata"]
                     ["vocab"])
    assert (imdb.returncode, error_lines(imdb)) == (2, [
        f"error: ckpt_path {ckpt} was trained on other data than this run's: dataset is 'text' there, 'imdb' here; "
        f"vocab has {vocab} entries there, {imdb_vocab} here; {todo}"]), imdb.stderr[-3000:]
    assert not (tmp_path / "imdb/checkpoints").exists()
