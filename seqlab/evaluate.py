"""evaluate(cfg) -> metrics: a checkpoint on its run's test (or validation) split, with train()'s numbers.

The data comes from the training run's saved config (`<run>/.hydra/config.yaml`, the checkpoint being
`<run>/checkpoints/*.ckpt`), so the validation carve (seeded), the vocabulary and the batches are those of the run,
and `test_acc` equals the one in the run's metrics.json. `data.*` and `paths.*` set in the eval config override the
run's (data moved, another cache). The model's vocabulary is the checkpoint's: when the data rebuilds another one,
the data is re-encoded with the checkpoint's and a warning says so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict

from seqlab.data.cache import atomic_write_text
from seqlab.data.vocab import Vocab
from seqlab.errors import ConfigError, DataError
from seqlab.inference import load_model, read_checkpoint
from seqlab.train import build_datamodule

log = logging.getLogger(__name__)
SPLITS = ("test", "val")
PATH_KEYS = ("root", "train_file", "val_file", "test_file")


def run_config(ckpt: Path, given: str | None) -> DictConfig:
    """The training run's config, relative data paths made absolute against the directory it ran from."""
    path = Path(to_absolute_path(given)) if given else ckpt.parent.parent / ".hydra" / "config.yaml"
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


def use_checkpoint_vocab(dm: pl.LightningDataModule, itos: list[str]) -> int:
    """Make the datamodule encode with the checkpoint's vocabulary; returns how many of its words the data lacks."""
    if list(dm.vocab.itos) == list(itos):
        return 0
    # Rebuild keeping every training word, then map word -> checkpoint id (<unk> for words the model never saw).
    dm.datasets, dm.max_size, dm.min_freq = {}, None, 1
    dm.setup()
    stoi = {t: i for i, t in enumerate(itos)}
    table = torch.tensor([stoi.get(t, Vocab.unk_index) for t in dm.vocab.itos], dtype=torch.int64)
    for ds in dm.datasets.values():
        ds.ids = ds.ids.map_values(table)
    missing = len(set(itos[2:]) - set(dm.vocab.itos))
    dm.vocab = Vocab(itos)
    log.warning("The vocabulary rebuilt from the data differs from the checkpoint's; the data is encoded with the "
                "checkpoint's (%d of its %d words do not occur in this training data), so the metrics can differ "
                "from the run's metrics.json.", missing, len(itos))
    return missing


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate `cfg.ckpt` on `cfg.split`; returns (and writes as JSON) the metrics, keys as in metrics.json."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}.")
    if not cfg.ckpt:
        raise ConfigError("No checkpoint given; add ckpt=PATH (e.g. outputs/runs/<run>/checkpoints/last.ckpt).")
    ckpt_path = Path(to_absolute_path(str(Path(str(cfg.ckpt)).expanduser())))
    checkpoint = read_checkpoint(ckpt_path)
    run = run_config(ckpt_path, cfg.run_config)
    apply_overrides(run, cfg)
    threads = cfg.get("threads") or run.threads
    if threads:
        torch.set_num_threads(int(threads))
    if run.flush_denormal:
        torch.set_flush_denormal(True)

    model, info = load_model(checkpoint)
    dm = build_datamodule(run)
    dm.prepare_data()
    dm.setup()
    if list(dm.labels) != list(info["labels"]):
        raise DataError(f"The data's labels {list(dm.labels)} are not the checkpoint's {list(info['labels'])}; "
                        "evaluate on the dataset the model was trained for.")
    missing = use_checkpoint_vocab(dm, info["vocab"])

    trainer = pl.Trainer(accelerator=cfg.accelerator or run.trainer.accelerator, devices=1,
                         precision=run.trainer.precision, deterministic=run.trainer.deterministic, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False)
    run_split = trainer.test if cfg.split == "test" else trainer.validate
    results = run_split(model, datamodule=dm, verbose=False)[0]
    metrics: dict[str, Any] = model.results_as_metrics(results)
    metrics.update({"split": cfg.split, "examples": len(dm.datasets[cfg.split]), "checkpoint": str(ckpt_path),
                    "data_root": str(dm.root), "vocab_words_missing_in_data": missing})
    out = Path(to_absolute_path(cfg.output)) if cfg.output else ckpt_path.with_name(
        f"{ckpt_path.stem}.{cfg.split}.json")
    try:
        atomic_write_text(json.dumps(metrics, indent=2) + "\n", out)
        metrics["written_to"] = str(out)
    except OSError as e:
        log.warning("Could not write %s (%s); the metrics are printed only.", out, e)
    return metrics
