"""A bad setting at the Hydra/Lightning boundary is one `error:` line naming the key (exit 2, no traceback), before
any data is prepared (seqlab/checks.py); valid settings pass the same checks."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_imdb_tree
from hydra import compose, initialize_config_dir

from seqlab.arguments import check_arguments
from seqlab.checks import callback_specs, check_train_config
from seqlab.errors import ConfigError

PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"
# (override, what the error line must contain: the key, and for typos the suggestion)
BAD = [
    ("threads=0", "threads must be a positive integer"),
    ("threads=abc", "threads must be"),
    ("threads=1.5", "threads must be"),
    ("early_stopping={patiense:3}", "early_stopping.patiense is not an argument of EarlyStopping; did you mean "
                                    "patience?"),
    ("early_stopping={patience:x}", "early_stopping.patience must be an integer"),
    ("early_stopping={patience:-1}", "early_stopping.patience must be an integer >= 0"),
    ("early_stopping={monitor:val/loss}", "early_stopping.monitor is not a setting"),
    ("early_stopping=5", "early_stopping must be null or a mapping"),
    ("+model.optimizer.betas_typo=1", "model.optimizer.betas_typo is not an argument of Adam; did you mean betas?"),
    ("model.optimizer.lr=-1", "model.optimizer.lr=-1 is rejected by torch.optim.Adam (Invalid learning rate"),
    ("model.optimizer.lr=abc", "model.optimizer.lr must be a number"),
    ("+model.optimizer.betas=[1.5,0.9]", "model.optimizer.betas=[1.5, 0.9] is rejected"),
    ("model.optimizer._target_=torch.optim.Nope", "model.optimizer._target_=torch.optim.Nope cannot be imported"),
    ("model.optimizer._target_=torch.nn.Linear", "model.optimizer._target_=torch.nn.Linear is not a torch.optim"),
    ("+model.optimizer.params=1", "model.optimizer.params is set by seqlab"),
    ("model.scheduler={_target_:torch.optim.lr_scheduler.StepLR}", "model.scheduler needs step_size"),
    (f"model.scheduler={{_target_:{PLATEAU},factr:0.5}}", "model.scheduler.factr is not an argument of "
                                                          "ReduceLROnPlateau; did you mean factor?"),
    (f"model.scheduler={{_target_:{PLATEAU},factor:2}}", "model.scheduler.factor=2 is rejected"),
    (f"model.scheduler={{_target_:{PLATEAU},patience:x}}", "model.scheduler.patience must be an integer"),
    (f"model.scheduler={{_target_:{PLATEAU},interval:week}}", "model.scheduler.interval must be epoch or step"),
    (f"model.scheduler={{_target_:{PLATEAU},frequency:0}}", "model.scheduler.frequency must be a positive integer"),
    ("model.scheduler={_target_:torch.optim.Adam}", "model.scheduler._target_=torch.optim.Adam is not a"),
    ("+trainer.foo=1", "trainer.foo is not an argument of Trainer"),
    ("+trainer.max_epoch=3", "trainer.max_epoch is not an argument of Trainer; did you mean max_epochs?"),
    ("+trainer.callbacks=[]", "trainer.callbacks is set by seqlab"),
    ("trainer.max_epochs=-2", "trainer.max_epochs=-2 is rejected"),
    ("trainer.max_epochs=x", "trainer.max_epochs must be an integer or null"),
    ("trainer.devices=0", "trainer.devices=0 is rejected"),
    ("trainer.devices=x", "trainer.devices='x' is rejected"),
    ("trainer.precision=bad", "trainer.precision must be one of"),
    ("trainer.strategy=foo", "trainer.strategy='foo' is rejected"),
    ("trainer.accelerator=foo", "trainer.accelerator='foo' is rejected"),
    ("trainer.max_time=abc", "trainer.max_time='abc' is rejected"),
    ("trainer.max_time=5", "trainer.max_time must be"),
    ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5 is rejected"),
    ("trainer.limit_val_batches=-1", "trainer.limit_val_batches=-1 is rejected"),
    ("trainer.limit_test_batches=0", "trainer.limit_test_batches=0 would skip that split"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 would train nothing and test an untrained model; give a positive "
                             "number, or -1 for no limit (with trainer.max_time)."),
    ("+trainer.max_steps=0", "trainer.max_steps=0 would train nothing and test an untrained model"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val must be >= 0"),
    ("trainer.log_every_n_steps=-1", "trainer.log_every_n_steps must be >= 0"),  # 0: no per-step logging
    ("trainer.num_sanity_val_steps=-2", "trainer.num_sanity_val_steps must be >= -1"),
    ("trainer.deterministic=x", "trainer.deterministic must be true/false or 'warn' or null"),
    ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be a positive integer"),
    ("+trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch must be a positive integer"),
    ("+trainer.val_check_interval=2.0", "trainer.val_check_interval must be a fraction"),
    ("seed=abc", "seed must be an integer"),
    ("seed=-1", "seed must be an integer in [0, 2**32)"),
    ("flush_denormal=maybe", "flush_denormal must be true or false"),
    ("reuse_memory=1", "reuse_memory must be true or false, got 1"),
    ("checkpoint_every_n_steps=-1", "checkpoint_every_n_steps must be a positive integer, or 0 or null (off)"),
    ("ckpt_path=missing.ckpt", "missing.ckpt is not a file"),
    ("ckpt_path=notes.txt", "notes.txt is not a checkpoint"),
    ("callbacks=5", "callbacks must be a mapping"),
    ("+model.hiden_size=64", "model.hiden_size is not an argument of SeqModel; did you mean hidden_size?"),
    ("model.hidden_size=abc", "model.hidden_size must be an integer, got 'abc'"),
    ("model.bidirectional=maybe", "model.bidirectional must be true/false"),
    ("model.vectors=missing.txt", "Vectors file"),
    ("trainer.enable_progress_bar=x", "trainer.enable_progress_bar must be true/false or null"),
    ("+callbacks.mine._target_=torch.optim.Adam", "callbacks.mine._target_=torch.optim.Adam is not a "
                                                  "pytorch_lightning"),
    ("+callbacks.mine._target_=nowhere.Callback", "callbacks.mine._target_=nowhere.Callback cannot be imported"),
    ("+callbacks.mine._target_=pytorch_lightning.callbacks.EarlyStopping", "callbacks.mine needs monitor"),
    # what Hydra itself cannot compose (it would print a block and exit 1) and values it cannot resolve
    ("data=imbd", "data=imbd is not an option of the config group data; did you mean imdb? use one of btc, conll, "
                  "imdb, pos, sst2, text."),
    ("backend=nope", "backend=nope is not an option of the config group backend; use one of custom, torch."),
    ("model.hiden_size=4", "model.hiden_size is not a key of this config; did you mean hidden_size? check the "
                           "spelling"),
    # a Trainer / optimizer argument the yaml does not set: no "did you mean limit_train_batches?"
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches is an argument of pytorch_lightning.Trainer "
                                          "that the config does not set; add it with "
                                          "+trainer.accumulate_grad_batches=... (the + adds a key)."),
    ("model.optimizer.weight_decay=0.1", "model.optimizer.weight_decay is an argument of torch.optim.Adam that the "
                                         "config does not set; add it with +model.optimizer.weight_decay=... (the + "
                                         "adds a key)."),
    ("model.optimizer.momentum=0.9", "model.optimizer.momentum is not a key of this config; check the spelling"),
    ("trainer.max_epochs=[1", "cannot parse the override 'trainer.max_epochs=[1'"),
    ("model.hidden_size=${nope}", "model.hidden_size: Interpolation key 'nope' not found; fix the ${...} "
                                  "interpolation"),
    ("trainer.max_epochs=${oc.env:SEQLAB_TEST_UNSET_VARIABLE}", "trainer.max_epochs: Environment variable "
                                                                "'SEQLAB_TEST_UNSET_VARIABLE' not found"),
    # the task's heads are known from the data config alone: no data is read before this error
    ("model.head=crf", "model.head=crf does not apply to the classification task; use one of linear."),
]
if not torch.cuda.is_available():
    BAD.append(("trainer.accelerator=gpu", "trainer.accelerator='gpu' is rejected"))


@pytest.fixture(scope="module")
def imdb_root(tmp_path_factory) -> Path:
    """Real data for the runs: were a setting not caught first, its data would be prepared and cached."""
    root = tmp_path_factory.mktemp("data") / "imdb"
    make_imdb_tree(root, n_per_class=4)
    return root


@pytest.fixture(scope="module")
def imdb_root_24(tmp_path_factory) -> Path:
    """24 training reviews: 2 carved for validation (data.val_fraction=0.1 of each class), 22 left for training."""
    root = tmp_path_factory.mktemp("data24") / "imdb"
    make_imdb_tree(root, n_per_class=12)
    return root


def run_cli(tmp_path: Path, monkeypatch, capfd, *overrides: str) -> tuple[int, str, str]:
    """scripts/train.py in this process (the same code path as the command, without its start-up time)."""
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", f"hydra.run.dir={tmp_path / 'run'}", *overrides])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts/train.py"), run_name="__main__")
    out, err = capfd.readouterr()
    return exit_.value.code, out, err


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_bad_setting_is_one_clear_line_before_any_data_is_prepared(tmp_path, monkeypatch, capfd, imdb_root,
                                                                   override, message):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    code, out, err = run_cli(tmp_path, monkeypatch, capfd, f"data.root={imdb_root}", "data.tokenizer_workers=1",
                             override)
    assert code == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert message in lines[0]
    assert lines[0].endswith((".", "...")) and "Traceback" not in out + err
    assert not (tmp_path / "cache").exists()  # nothing prepared, nothing cached
    assert not (tmp_path / "run/checkpoints").exists()


def test_the_command_itself_exits_2_with_one_line(tmp_path, imdb_root):
    """The same through a real process (the issue's example: torch's ValueError for a negative learning rate)."""
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), f"hydra.run.dir={tmp_path / 'run'}",
                           f"data.root={imdb_root}", "model.optimizer.lr=-1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: model.optimizer.lr=-1 is rejected by torch.optim.Adam")
    assert "Traceback" not in proc.stdout + proc.stderr and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("override", [f"model.scheduler={{_target_:{PLATEAU},monitor:val/accc}}", "monitor=val/f1"])
def test_a_monitor_the_task_does_not_log_is_one_clear_line(tmp_path, monkeypatch, capfd, imdb_root, override):
    """Which metrics exist is the task's to say, known once the data names its task: the error comes after the
    data is read, before training."""
    code, out, err = run_cli(tmp_path, monkeypatch, capfd, f"data.root={imdb_root}", "data.tokenizer_workers=1",
                             override)
    lines = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]  # not progress bars
    assert code == 2 and len(lines) == 1 and "is not a metric the classification task logs" in lines[0], err
    assert "val/acc, val/macro_f1" in lines[0] and not (tmp_path / "run/checkpoints").exists()


AFTER_DATA = [  # imdb_root_24: 22 training reviews (1 batch of 64; 11 of 2), 2 validation reviews (1 batch)
    (["+trainer.val_check_interval=500"],
     "trainer.val_check_interval=500 is more than the 1 training batches an epoch has here; give at most 1, a fraction "
     "of an epoch (e.g. 0.5), or add +trainer.check_val_every_n_epoch=null to count batches across epochs."),
    (["+trainer.val_check_interval=3", "data.batch_size=2", "trainer.limit_train_batches=2"],  # 4 batches, 2 kept
     "trainer.val_check_interval=3 is more than the 2 training batches an epoch has here (after "
     "trainer.limit_train_batches=2); give at most 2, a fraction of an epoch (e.g. 0.5), or add "
     "+trainer.check_val_every_n_epoch=null to count batches across epochs."),
    (["trainer.limit_val_batches=0.5"],
     "trainer.limit_val_batches=0.5 leaves none of the 1 validation batches an epoch has here; give a fraction of at "
     "least 1/1, or a number of batches."),
    (["data.val_fraction=0.01"],  # round(12 * 0.01) = 0 reviews of each class
     "data.val_fraction=0.01 of the 24 training examples leaves no validation example; raise data.val_fraction or "
     "use more training data."),
]


@pytest.mark.parametrize(("overrides", "message"), AFTER_DATA, ids=[" ".join(o) for o, _ in AFTER_DATA])
def test_a_setting_the_batch_count_rules_out_is_one_clear_line(tmp_path, monkeypatch, capfd, imdb_root_24,
                                                               overrides, message):
    """How many batches an epoch has is known once the data is read: the error comes then, before training (Lightning
    raises it as a ValueError traceback in the first epoch)."""
    code, out, err = run_cli(tmp_path, monkeypatch, capfd, f"data.root={imdb_root_24}", "data.tokenizer_workers=1",
                             *overrides)
    lines = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]  # not progress bars
    assert (code, lines) == (2, [f"error: {message}"]), err[-2000:]
    assert not (tmp_path / "run/checkpoints").exists()


GOOD = [
    [], ["threads=1"], ["threads=auto"], ["threads=null"], ["early_stopping={patience:3,min_delta:0.001}"],
    [f"model.scheduler={{_target_:{PLATEAU},factor:0.5,patience:1}}"],
    ["model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,step_size:2,interval:step,frequency:10}"],
    ["model.optimizer._target_=torch.optim.SGD", "+model.optimizer.momentum=0.9", "+model.optimizer.nesterov=true"],
    ["+model.optimizer.betas=[0.8,0.99]", "model.optimizer.lr=0.01"],
    ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"],
    ["trainer.max_time=00:00:20:00", "trainer.limit_train_batches=0.5", "trainer.limit_val_batches=3",
     "trainer.gradient_clip_val=0", "trainer.log_every_n_steps=0", "trainer.precision=64", "trainer.max_epochs=-1",
     "trainer.deterministic=true"],
    ["+callbacks.summary={_target_:pytorch_lightning.callbacks.ModelSummary,max_depth:2}", "+callbacks.off=null"],
    *([f"experiment={p.stem}"] for p in sorted((REPO / "configs/experiment").glob("*.yaml"))),
]


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(o) or "defaults" for o in GOOD])
def test_valid_settings_pass(overrides):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        check_train_config(compose("train", overrides=overrides))


def test_check_arguments_against_a_signature():
    def f(a: int, b: float = 1.0, c: str | None = None, d: bool = False, e: list[int] | None = None) -> None:
        pass

    check_arguments("x", f, {"a": 1, "b": 2, "c": None, "d": True, "e": [1]})  # an int is a valid float
    for given, message in [({"b": 1.0}, r"x needs a \(an argument of .*f without a default\); add x.a=\.\.\."),
                           ({"a": 1, "bb": 2}, "x.bb is not an argument of .*f; did you mean b\\? accepted: a, b, c, "
                                               "d, e"),
                           ({"a": True}, "x.a must be an integer, got True"),  # a bool is not an int
                           ({"a": 1, "c": 3}, "x.c must be a string or null, got 3"),
                           ({"a": 1, "d": "yes"}, "x.d must be true/false")]:
        with pytest.raises(ConfigError, match=message):
            check_arguments("x", f, given)
    with pytest.raises(ConfigError, match="x.a is set by seqlab"):
        check_arguments("x", f, {"a": 1}, provided=("a",))


def test_callback_specs_from_a_mapping_or_a_list():
    a, b = {"_target_": "A"}, {"_target_": "B"}
    assert callback_specs(None) == [] and callback_specs({}) == []
    assert callback_specs({"one": a, "off": None, "two": b}) == [a, b]  # a null entry switches one off
    assert callback_specs([a, None, b]) == [a, b]
    with pytest.raises(ConfigError, match="callbacks must be a mapping"):
        callback_specs("A")
