"""evaluate(cfg) -> metrics: a checkpoint on its run's test (or validation) split, with train()'s numbers.

The data comes from the training run's saved config (`<run>/.hydra/config.yaml`, the checkpoint being
`<run>/checkpoints/*.ckpt`), so the validation carve (seeded), the vocabulary and the batches are those of the run,
and `test_acc` equals the one in the run's metrics.json. `data.*` and `paths.*` set in the eval config override the
run's (data moved, another cache). The data is encoded with the checkpoint's vocabulary and labels (the datamodule
takes the checkpoint's metadata); when the data would build another vocabulary, a warning says so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from seqlab import threads
from seqlab.allocator import reuse_freed_memory
from seqlab.arguments import build_checked
from seqlab.data.cache import atomic_write_text
from seqlab.errors import ConfigError, DataError
from seqlab.inference import read_checkpoint
from seqlab.metadata import Metadata
from seqlab.paths import user_path
from seqlab.train import PATH_KEYS, build_datamodule

log = logging.getLogger(__name__)
SPLITS = ("test", "val")


def run_config(ckpt: Path, given: str | None) -> DictConfig:
    """The training run's config, relative data paths made absolute against the directory it ran from."""
    path = user_path(given) if given else ckpt.parent.parent / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"No training config at {path}; give run_config=PATH to the .hydra/config.yaml of the run "
                          "that wrote the checkpoint.")
    cfg = OmegaConf.load(path)
    hydra_file = path.parent / "hydra.yaml"
    train_cwd = OmegaConf.load(hydra_file).hydra.runtime.cwd if hydra_file.is_file() else None
    if train_cwd:
        with open_dict(cfg):
            for key in PATH_KEYS:
                value = cfg.data.get(key)
                if isinstance(value, str) and "${" not in value and not Path(value).expanduser().is_absolute():
                    cfg.data[key] = str(Path(train_cwd) / value)
    return cfg


def apply_overrides(run: DictConfig, cfg: DictConfig) -> None:
    """Non-null `data.*` / `paths.*` of the eval config replace the run's."""
    for group in ("data", "paths"):
        for key, value in (cfg.get(group) or {}).items():
            if value is None:
                continue
            if key not in run[group]:
                raise ConfigError(f"{group}.{key} does not apply to this run's data ({run.data._target_}); "
                                  f"leave it null.")
            run[group][key] = value


def load_module(checkpoint: dict[str, Any]):
    """The trainer's LightningModule (metrics and all) with a checkpoint's weights."""
    from seqlab.models.module import SeqModel

    metadata = Metadata.from_dict(checkpoint["seqlab"].get("metadata"))
    try:
        model = SeqModel(metadata, **checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"])
    except (ConfigError, RuntimeError) as e:
        raise DataError(f"The checkpoint does not fit this version of seqlab's model ({str(e).splitlines()[0]}); "
                        "use the seqlab version that trained it.") from e
    return model.eval(), metadata


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate `cfg.ckpt` on `cfg.split`; returns (and writes as JSON) the metrics, keys as in metrics.json."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}.")
    if not cfg.ckpt:
        raise ConfigError("No checkpoint given; add ckpt=PATH (e.g. outputs/runs/<run>/checkpoints/last.ckpt).")
    ckpt_path = user_path(cfg.ckpt)
    checkpoint = read_checkpoint(ckpt_path)
    run = run_config(ckpt_path, cfg.run_config)
    apply_overrides(run, cfg)
    threads.configure(cfg.threads if cfg.get("threads") is not None else run.get("threads"))
    if run.flush_denormal:
        torch.set_flush_denormal(True)
    if run.get("reuse_memory"):
        reuse_freed_memory()
    trainer_args = {"accelerator": cfg.accelerator or run.trainer.accelerator, "devices": 1,
                    "precision": run.trainer.precision, "deterministic": run.trainer.deterministic}
    build_checked("trainer", lambda **a: pl.Trainer(logger=False, enable_checkpointing=False, **a), trainer_args,
                  "pytorch_lightning.Trainer")  # a bad accelerator: one sentence, before the data is read

    model, metadata = load_module(checkpoint)
    dm = build_datamodule(run, metadata=metadata)  # encoded with the checkpoint's vocabulary and labels
    dm.prepare_data()
    dm.setup()
    if not dm.has_split(cfg.split):
        raise ConfigError(f"The run's data has no {cfg.split} split; give data.{cfg.split}_file or split=val.")

    trainer = pl.Trainer(**trainer_args, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False)
    run_split = trainer.test if cfg.split == "test" else trainer.validate
    results = run_split(model, datamodule=dm, verbose=False)[0]
    metrics: dict[str, Any] = model.task.as_metrics(results)
    metrics.update({"split": cfg.split, "examples": len(dm.datasets[cfg.split]), "checkpoint": str(ckpt_path),
                    "data_root": None if dm.root is None else str(dm.root)})
    out = user_path(cfg.output) if cfg.output else ckpt_path.with_name(
        f"{ckpt_path.stem}.{cfg.split}.json")
    try:
        atomic_write_text(json.dumps(metrics, indent=2) + "\n", out)
        metrics["written_to"] = str(out)
    except OSError as e:
        log.warning("Could not write %s (%s); the metrics are printed only.", out, e)
    return metrics
