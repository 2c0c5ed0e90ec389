"""Config checks at the Hydra/Lightning boundary: `train()` calls `check_train_config(cfg)` before any data is read.

Lightning, torch and Hydra check their arguments late (after the data is prepared, some only during the first epoch)
and report them as tracebacks. Here every top-level setting, `early_stopping`, `callbacks`, `model.optimizer`,
`model.scheduler` and `trainer.*` is checked first, and a bad value becomes one `ConfigError` sentence naming the key:

1. keys against the signature of what they configure (`EarlyStopping`, the optimizer's or scheduler's `_target_`,
   `pytorch_lightning.Trainer`, each callback's class): an unknown key names the closest accepted one and lists
   them; a required argument left out is named (seqlab/arguments.py);
2. value types against the signature's annotations (`trainer.max_epochs=x` is not an integer);
3. ranges Lightning accepts and then fails on, or silently misuses (`trainer.gradient_clip_val=-1` clamps every
   gradient to -1, `trainer.limit_train_batches=0` or `trainer.max_epochs=0` tests an untrained model,
   `trainer.num_sanity_val_steps=-2`); what depends on the number of batches is checked once the data is loaded
   (`check_batches`: `trainer.val_check_interval=500` with fewer training batches);
4. the object is built as it will be (the optimizer on a dummy parameter, the scheduler on that optimizer, the
   Trainer without logger or callbacks), and what torch or Lightning raise is translated, the key found by
   building with each setting alone (`model.optimizer.lr=-1`: torch's "Invalid learning rate").

`model.*` keys and types are checked against the model class's signature (`+model.hiden_size=64`: did you mean
hidden_size?); its value ranges are the model's own checks (the regularisers': seqlab.models.regularizers). A
`model.scheduler` argument `total_steps`, `T_max` or `total_iters` may be `auto` (the steps the trainer will take,
filled in by SeqModel); `model.swa` holds the arguments of Lightning's StochasticWeightAveraging (seqlab/swa.py).
`early_stopping.monitor` and `.mode` are not user keys: early stopping watches the metric the best checkpoint is
chosen on (the task's, maximised), so the two can never disagree. `callbacks` is a mapping of name -> Lightning
callback config by `_target_` (or a list of them; a null entry is skipped), instantiated by `train()`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqlab.arguments import (
    build_checked,
    check_arguments,
    check_positive_int,
    has_nested_targets,
    is_int,
    resolve_target,
)
from seqlab.callbacks_resume import resolve_ckpt_path
from seqlab.cli import resolution_message
from seqlab.data.vectors import KNOWN_VECTORS, resolve_vectors
from seqlab.errors import ConfigError
from seqlab.paths import user_path
from seqlab.tasks import get_task

SET_BY_SEQLAB = {"trainer": ("logger", "callbacks", "default_root_dir", "use_distributed_sampler"),
                 "early_stopping": ("monitor", "mode")}
SCHEDULER_LIGHTNING_KEYS = ("monitor", "interval", "frequency")  # as in SeqModel.configure_optimizers
AUTO_KEYS = ("total_steps", "T_max", "total_iters")  # as seqlab.models.module.AUTO_KEYS
AUTO_STANDIN = 10**9  # what `auto` is checked as: any count of steps the scheduler accepts
NON_NEGATIVE = ("gradient_clip_val", "min_epochs", "min_steps", "log_every_n_steps")  # log_every_n_steps=0: none
AT_LEAST_ONE = ("accumulate_grad_batches", "check_val_every_n_epoch", "num_nodes")
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check_optimization(optimizer: Any, scheduler: Any) -> None:
    """`model.optimizer` and `model.scheduler`: built on a dummy parameter as SeqModel.configure_optimizers will."""
    where = "model.optimizer"
    spec = optimizer if optimizer is not None else {"_target_": "torch.optim.Adam", "lr": 1e-3}
    cls, args = resolve_target(where, spec, torch.optim.Optimizer, "torch.optim.Adam")
    check_arguments(where, cls, args, provided=("params",))
    params = [torch.nn.Parameter(torch.zeros(1))]
    if not has_nested_targets(args):
        build_checked(where, lambda **a: cls(params, **a), args, spec["_target_"])
    if scheduler is None:
        return
    where = "model.scheduler"
    base = getattr(torch.optim.lr_scheduler, "LRScheduler", torch.optim.lr_scheduler._LRScheduler)
    cls, args = resolve_target(where, scheduler, base, "torch.optim.lr_scheduler.StepLR")
    lightning = {k: args.pop(k) for k in SCHEDULER_LIGHTNING_KEYS if k in args}
    if lightning.get("interval", "epoch") not in ("epoch", "step"):
        raise ConfigError(f"model.scheduler.interval must be epoch or step, got {lightning['interval']!r}.")
    check_positive_int("model.scheduler.frequency", lightning.get("frequency", 1))
    # model.scheduler.monitor is checked against the task's metrics once the task is known (train.check_monitors)
    for key, value in args.items():
        if value == "auto" and key not in AUTO_KEYS:
            raise ConfigError(f"model.scheduler.{key}=auto: only {', '.join(AUTO_KEYS)} can be auto (the number of "
                              "steps the trainer will take); give a value.")
    args = {k: AUTO_STANDIN if v == "auto" else v for k, v in args.items()}
    check_arguments(where, cls, args, provided=("optimizer",))
    if not has_nested_targets(args):
        def build(**a: Any) -> Any:
            return cls(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), **a)
        build_checked(where, build, args, scheduler["_target_"])


def check_trainer(trainer: dict[str, Any]) -> None:
    """`trainer.*`: keys, types and ranges, then a Trainer built with them (no logger, callbacks or checkpoints)."""
    cls, args = resolve_target("trainer", trainer, pl.Trainer, "pytorch_lightning.Trainer")
    check_arguments("trainer", cls, args, provided=SET_BY_SEQLAB["trainer"])
    for key in NON_NEGATIVE:
        if args.get(key) is not None and args[key] < 0:
            raise ConfigError(f"trainer.{key} must be >= 0 (or null), got {args[key]!r}.")
    for key in AT_LEAST_ONE:
        if args.get(key) is not None and args[key] < 1:
            raise ConfigError(f"trainer.{key} must be a positive integer (or null), got {args[key]!r}.")
    for key in ("max_epochs", "max_steps"):  # -1: no limit; 0 fits nothing and tests an untrained model
        if is_int(args.get(key)) and args[key] == 0:
            raise ConfigError(f"trainer.{key}=0 would train nothing and test an untrained model; give a positive "
                              "number, or -1 for no limit (with trainer.max_time).")
    if args.get("num_sanity_val_steps") is not None and args["num_sanity_val_steps"] < -1:
        raise ConfigError(f"trainer.num_sanity_val_steps must be >= -1 (-1: all), got {args['num_sanity_val_steps']}.")
    interval = args.get("val_check_interval")
    if (isinstance(interval, float) and not 0.0 < interval <= 1.0) or (is_int(interval) and interval <= 0):
        raise ConfigError("trainer.val_check_interval must be a fraction of an epoch in (0, 1] or a positive number "
                          f"of batches, got {interval!r}.")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        if args.get(key) in (0, 0.0):
            raise ConfigError(f"trainer.{key}=0 would skip that split, and a run needs all three; give a positive "
                              "number of batches or a fraction in (0, 1].")
    build_checked("trainer", lambda **a: cls(**{"logger": False, "enable_checkpointing": False, **a}), args,
                   "pytorch_lightning.Trainer")


def _limited(batches: int, limit: Any) -> int:
    """Batches an epoch of a split runs under `trainer.limit_<split>_batches`, as Lightning counts them."""
    if limit is None:
        return batches
    return min(batches, limit) if is_int(limit) else int(batches * limit)


def check_batches(trainer: dict[str, Any], batches: dict[str, int]) -> None:
    """`trainer.*` values Lightning checks against the data once the loaders exist (a traceback in the first epoch):
    a fraction `limit_<split>_batches` that leaves no batch, an integer `val_check_interval` beyond an epoch's
    training batches. `batches`: split -> batches of one epoch in each process."""
    for split, n in batches.items():
        limit = trainer.get(f"limit_{split}_batches")
        if isinstance(limit, float) and n and _limited(n, limit) == 0:
            raise ConfigError(f"trainer.limit_{split}_batches={limit} leaves none of the {n} {SPLIT_NAMES[split]} "
                              f"batches an epoch has here; give a fraction of at least 1/{n}, or a number of batches.")
    limit, interval = trainer.get("limit_train_batches"), trainer.get("val_check_interval")
    train = _limited(batches["train"], limit)
    if is_int(interval) and trainer.get("check_val_every_n_epoch", 1) is not None and interval > train:
        after = f" (after trainer.limit_train_batches={limit})" if train < batches["train"] else ""
        raise ConfigError(f"trainer.val_check_interval={interval} is more than the {train} training batches an epoch "
                          f"has here{after}; give at most {train}, a fraction of an epoch (e.g. 0.5), or add "
                          "+trainer.check_val_every_n_epoch=null to count batches across epochs.")


def callback_specs(value: Any) -> list[Any]:
    """The `callbacks` setting as a list of callback configs: a mapping's values or a list's items, nulls dropped."""
    if value is None:
        return []
    if isinstance(value, (DictConfig, dict)):
        return [v for v in value.values() if v is not None]
    if isinstance(value, (ListConfig, list)):
        return [v for v in value if v is not None]
    raise ConfigError(f"callbacks must be a mapping of name -> {{_target_: ...}} (or a list), got {value!r}.")


def check_callbacks(value: Any) -> None:
    names = list(value) if isinstance(value, (DictConfig, dict)) else None
    for i, spec in enumerate(callback_specs(value)):
        where = f"callbacks.{names[i]}" if names else f"callbacks[{i}]"
        cls, args = resolve_target(where, _plain(spec), pl.Callback, "pytorch_lightning.callbacks.ModelSummary")
        check_arguments(where, cls, args)


def check_top_level(cfg: DictConfig) -> None:
    threads = cfg.get("threads")
    check_positive_int("threads", threads, allow_none=True, also=("auto",))
    seed = cfg.get("seed")
    if not (is_int(seed) and 0 <= seed < 2**32):
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
    for key in ("flush_denormal", "reuse_memory"):
        if not isinstance(cfg.get(key), bool):
            raise ConfigError(f"{key} must be true or false, got {cfg.get(key)!r}.")
    every = cfg.get("checkpoint_every_n_steps")
    if not (every is None or (is_int(every) and every >= 0)):
        raise ConfigError(f"checkpoint_every_n_steps must be a positive integer, or 0 or null (off), got {every!r}.")
    path = resolve_ckpt_path(cfg.get("ckpt_path"))
    if path not in (None, "last") and not zipfile.is_zipfile(path):
        raise ConfigError(f"ckpt_path {path} is not a checkpoint (not a file written by torch.save); give a .ckpt "
                          "written by scripts/train.py, or ckpt_path=last.")


def check_early_stopping(value: Any) -> None:
    if not value:
        return
    spec = _plain(value)
    if not isinstance(spec, dict):
        raise ConfigError(f"early_stopping must be null or a mapping of EarlyStopping arguments, e.g. "
                          f"early_stopping={{patience:3}}; got {spec!r}.")
    for key in SET_BY_SEQLAB["early_stopping"]:
        if key in spec:
            raise ConfigError(f"early_stopping.{key} is not a setting: early stopping watches the metric the best "
                              "checkpoint is chosen on; remove it.")
    from pytorch_lightning.callbacks import EarlyStopping

    check_arguments("early_stopping", EarlyStopping, spec, provided=SET_BY_SEQLAB["early_stopping"])
    if is_int(spec.get("patience")) and spec["patience"] < 0:
        raise ConfigError(f"early_stopping.patience must be an integer >= 0, got {spec['patience']}.")
    build_checked("early_stopping", lambda **a: EarlyStopping(monitor="val/acc", mode="max", **a), spec,
                   "EarlyStopping")


def check_model(model: Any) -> None:
    """`model.*` keys and value types against the LightningModule's signature (its own checks of ranges run when it
    is built; a class method `check_config(arguments)`, if it has one, runs here too)."""
    cls, args = resolve_target("model", model, pl.LightningModule, "seqlab.models.module.SeqModel")
    check_arguments("model", cls, args, provided=("metadata",))
    vectors = args.get("vectors")
    if isinstance(vectors, str) and vectors.strip() not in KNOWN_VECTORS:  # a file: it exists (read after the data)
        spec = vectors if ":" in vectors[2:] else str(user_path(vectors))
        resolve_vectors(spec, Path("."))
    if callable(getattr(cls, "check_config", None)):
        cls.check_config(args)


def check_swa(value: Any, trainer: Any) -> None:
    """`model.swa`: null or StochasticWeightAveraging's arguments, with a start that trainer.max_epochs reaches."""
    if not value:
        return
    spec = _plain(value)
    if not isinstance(spec, dict):
        raise ConfigError(f"model.swa must be null or a mapping of StochasticWeightAveraging arguments, e.g. "
                          f"{{swa_lrs: 0.001, swa_epoch_start: 5}}; got {spec!r}.")
    from pytorch_lightning.callbacks import StochasticWeightAveraging

    check_arguments("model.swa", StochasticWeightAveraging, spec, provided=("avg_fn", "device"))
    build_checked("model.swa", lambda **a: StochasticWeightAveraging(**a), spec, "StochasticWeightAveraging")
    start, max_epochs = spec.get("swa_epoch_start", 0.8), (_plain(trainer) or {}).get("max_epochs")
    if not is_int(max_epochs) or max_epochs < 1:
        raise ConfigError(f"model.swa needs trainer.max_epochs (a positive integer, got {max_epochs!r}): the "
                          "averaging starts at an epoch of it.")
    if is_int(start) and start > max_epochs:
        raise ConfigError(f"model.swa.swa_epoch_start={start} is after trainer.max_epochs={max_epochs}: the weights "
                          "would never be averaged; give an earlier epoch (or a fraction of max_epochs).")


def check_resolves(cfg: DictConfig) -> None:
    """Every `${...}` interpolation resolves (OmegaConf would raise where the value is first read)."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(resolution_message(e)) from None


def check_task_head(cfg: DictConfig) -> None:
    """`model.head` against the heads of the data's task (`data.task`, else its datamodule's default task)."""
    name = cfg.data.get("task")
    if not name:
        try:
            name = getattr(get_class(cfg.data._target_), "default_task", None)
        except Exception:  # a datamodule that cannot be imported fails, with its own message, where it is built
            return
    if name:
        get_task(name).check_head(cfg.model.get("head") or "linear")


def check_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one sentence naming the key; DataError for a missing vectors file) for a setting torch,
    Lightning or Hydra would fail on later."""
    check_resolves(cfg)
    check_top_level(cfg)
    check_task_head(cfg)
    check_early_stopping(cfg.get("early_stopping"))
    check_callbacks(cfg.get("callbacks"))
    check_optimization(_plain(cfg.model.get("optimizer")), _plain(cfg.model.get("scheduler")))
    check_model(_plain(cfg.model))
    check_trainer(_plain(cfg.trainer))
    check_swa(cfg.model.get("swa"), cfg.trainer)

