"""Resuming an interrupted run exactly: step checkpoints, per-step dropout seeds, the `ckpt_path` setting.

A run killed at any point (even SIGKILL, mid-epoch) and resumed with `ckpt_path=last` in the same run directory ends
with the same weights and metrics as the uninterrupted run (tests/test_resume.py). Three pieces make that hold:

- `checkpoints/last-step.ckpt`, rewritten every `checkpoint_every_n_steps` training steps (Lightning writes through a
  temporary file), besides the epoch-end `last.ckpt`; Lightning's `ckpt_path="last"` takes the newer of the two.
- The training DataLoader is resumable (`seqlab.data.resumable`): its position in the epoch is saved in the
  checkpoint, and the resumed epoch skips the batches already trained on, in the same (seed, epoch) order; random
  choices made while collating a batch are seeded by the batch's position.
- `StepSeed`: the global torch RNG is re-seeded from (seed, rank, global step) before every training step, so
  dropout masks depend on the step alone, not on how many random numbers were drawn since the process started
  (DataLoader iterators, sanity checks and restores all draw some). fairseq seeds each update the same way.
- `PlateauStep`: epoch-interval ReduceLROnPlateau schedulers step at the end of each training epoch before the
  epoch-end checkpoints are written. Lightning steps them after `last.ckpt` is written (so a run resumed from it
  never takes that epoch's step) and skips the step in an epoch resumed mid-way (`FitLoop.on_advance_end`: "not
  self.restarting"), so a resumed run's learning rate would fall behind the uninterrupted run's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from seqlab.data.resumable import derived_seed, seed_torch
from seqlab.errors import ConfigError
from seqlab.paths import user_path

LAST_CHECKPOINT = "last"  # the state after the latest epoch
STEP_CHECKPOINT = "last-step"  # matches Lightning's "last*" pattern, so ckpt_path="last" considers it


class StepSeed(pl.Callback):
    """Seeds torch's global RNG (CPU and CUDA) before each training step from (seed, global rank, global step)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        seed_torch(derived_seed(self.seed, trainer.global_rank, trainer.global_step))


class PlateauStep(pl.Callback):
    """Takes over the epoch-end step of epoch-interval ReduceLROnPlateau schedulers (module docstring: why).

    At fit start their Lightning frequency is set out of reach, so Lightning never steps them; this callback steps
    them in `on_train_epoch_end`, which Lightning calls for callbacks like this one before the checkpoint
    callbacks' (which write `last.ckpt` there), every `frequency` epochs as Lightning would, with the monitored
    value of the epoch's validation."""

    def __init__(self) -> None:
        self.configs: list[tuple[Any, int]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.configs = []
        for config in trainer.lr_scheduler_configs:
            if config.reduce_on_plateau and config.interval == "epoch":
                self.configs.append((config, config.frequency))
                config.frequency = sys.maxsize  # Lightning's own step never comes due

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for config, every in self.configs:
            if (trainer.current_epoch + 1) % every:
                continue
            value = trainer.callback_metrics.get(config.monitor)
            if value is None:
                if config.strict:
                    raise ConfigError(f"model.scheduler monitors {config.monitor}, which was not logged in epoch "
                                      f"{trainer.current_epoch}; monitor a validation metric logged every epoch.")
                continue
            pl_module.lr_scheduler_step(config.scheduler, value)


def resume_callbacks(seed: int, checkpoint_dir: Path, every_n_steps: int | None) -> list[pl.Callback]:
    """StepSeed; PlateauStep; `last.ckpt` after every epoch's validation; `last-step.ckpt` every `every_n_steps`
    training steps (None or 0: none). Lightning's own `save_last=True` writes last.ckpt only when a top-k checkpoint
    is written, so it would lag behind epochs without a new best validation score."""
    last = ModelCheckpoint(dirpath=checkpoint_dir, filename=LAST_CHECKPOINT, save_top_k=1, enable_version_counter=False)
    callbacks: list[pl.Callback] = [StepSeed(seed), PlateauStep(), last]
    if every_n_steps:  # checked by seqlab.checks before the run
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, filename=STEP_CHECKPOINT, save_top_k=1,
                                         every_n_train_steps=every_n_steps, enable_version_counter=False))
    return callbacks


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    """`ckpt_path` for Trainer.fit: null, "last" (the newest last*.ckpt of this run directory, if any) or a file."""
    if ckpt_path in (None, "", "last"):
        return ckpt_path or None
    path = user_path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path {path} is not a file; give a checkpoint to resume from, or ckpt_path=last "
                          "with hydra.run.dir set to the interrupted run's directory.")
    return str(path)


def checkpoint_to_resume(ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """The file Trainer.fit resumes from: `ckpt_path` as a file, or for `last` the newest `last*.ckpt` of this run's
    checkpoint folder (Lightning's choice: the most recently modified); None to train afresh."""
    path = resolve_ckpt_path(ckpt_path)
    if path != "last":
        return path
    candidates = list(Path(checkpoint_dir).glob("last*.ckpt"))
    return str(max(candidates, key=lambda p: p.stat().st_mtime)) if candidates else None


def read_resume_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint at `path` (ckpt_path), checked to be one scripts/train.py wrote."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, or a pickle of arbitrary objects
        raise ConfigError(f"ckpt_path {path} is not a readable checkpoint ({type(e).__name__}); give a .ckpt written "
                          "by scripts/train.py, or ckpt_path=last.") from None
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("seqlab"), dict) and "state_dict" in ckpt):
        raise ConfigError(f"ckpt_path {path} is not a seqlab checkpoint (it carries no metadata); give a .ckpt "
                          "written by scripts/train.py, or ckpt_path=last.")
    return ckpt


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}").items()} or {prefix: {}}
    return {prefix: list(value) if isinstance(value, tuple) else value}


def _differences(there: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """`key is X there, Y here` for each differing key (lists: their sizes)."""
    out = []
    for key in sorted(there.keys() | here.keys()):
        a, b = there.get(key), here.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list) and len(a) > 4:
            sizes = f"{len(a)} entries there, {len(b)} here" if len(a) != len(b) else "as many entries, other ones"
            out.append(f"{key} has {sizes}")
        else:
            out.append(f"{key} is {a!r} there, {b!r} here")
    return out


def _tensor_difference(there: dict[str, Any], here: dict[str, Any]) -> str | None:
    """The first weight of one state_dict that the other lacks or has in another shape."""
    for key in [*there, *(k for k in here if k not in there)]:
        if key not in here:
            return f"its weight {key} is not in this run's model"
        if key not in there:
            return f"this run's model has a weight {key} that it lacks"
        if tuple(there[key].shape) != tuple(here[key].shape):
            return f"its weight {key} is {'x'.join(map(str, there[key].shape)) or 'a scalar'}, " \
                   f"{'x'.join(map(str, here[key].shape)) or 'a scalar'} here"
    return None


def check_checkpoint_fits(path: str, ckpt: dict[str, Any], model: pl.LightningModule) -> None:
    """ConfigError naming ckpt_path and what differs when the checkpoint is not a state of `model` (this run's):
    data of another kind (its metadata: vocabulary, labels, task, ...), or weights of other names or shapes (model
    settings). Settings that leave the weights' shapes alone (model.dropout, the learning rate) may differ."""
    run = Path(path).resolve().parent.parent / ".hydra" / "overrides.yaml"
    where = run if run.is_file() else "its .hydra/overrides.yaml"
    todo = f"resume with the settings of the run that wrote it ({where}), or leave ckpt_path out to train afresh."
    data = _differences(ckpt["seqlab"].get("metadata") or {}, model.metadata.to_dict())
    if data:
        more = f" (and {len(data) - 3} more)" if len(data) > 3 else ""
        raise ConfigError(f"ckpt_path {path} was trained on other data than this run's: {'; '.join(data[:3])}{more}; "
                          f"{todo}")
    mismatch = _tensor_difference(ckpt["state_dict"], model.state_dict())
    if mismatch is None:
        return
    there, here = _flat(dict(ckpt.get("hyper_parameters") or {}), "model"), _flat(dict(model.hparams), "model")
    settings = [s for s in _differences(there, here) if not s.startswith("model.monitor ")]  # a metric, not a weight
    what = "; ".join(settings[:4]) + (f" (and {len(settings) - 4} more)" if len(settings) > 4 else "") or mismatch
    raise ConfigError(f"ckpt_path {path} holds another model than this run's: {what}; {todo}")


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    """checkpoints/last.ckpt (the state after the latest epoch), if written."""
    path = Path(checkpoint_dir) / f"{LAST_CHECKPOINT}.ckpt"
    return str(path) if path.is_file() else None
