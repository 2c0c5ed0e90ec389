"""train(cfg) -> metrics: fit on train, select on val, test the best checkpoint, write metrics.json."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from seqlab.callbacks import EpochSummary
from seqlab.callbacks_resume import latest_checkpoint, resolve_ckpt_path, resume_callbacks
from seqlab.checks import callback_specs, check_train_config
from seqlab.data.cache import atomic_write_text
from seqlab.data.vectors import KNOWN_VECTORS, build_embedding_matrix
from seqlab.errors import SeqlabError
from seqlab.sweep import short_dirname

log = logging.getLogger(__name__)
MONITOR = "val/acc"


def _run_identity(cfg: DictConfig) -> tuple[Path, str, list[str]]:
    """(run directory, run name for TensorBoard, command-line overrides)."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        out = cfg.paths.output_dir or hc.runtime.output_dir
        return Path(out), short_dirname(hc.job.override_dirname) or "defaults", list(hc.overrides.task)
    if not cfg.paths.output_dir:
        raise ValueError("paths.output_dir must be set when train() runs outside a Hydra app")
    return Path(cfg.paths.output_dir), "defaults", []


HPARAM_METRICS = ("val_acc", "test_acc", "test_macro_f1", "test_oov_acc", "wall_time_s")


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings for TensorBoard's HParams tab (flat keys; locations and display settings left out)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    data = {k: v for k, v in c["data"].items() if k not in ("root", "train_file", "val_file", "test_file")}
    data["name"] = data.pop("_target_").rsplit(".", 1)[-1]
    model = {k: v for k, v in c["model"].items() if k != "_target_"}
    trainer = {k: c["trainer"][k] for k in ("max_epochs", "gradient_clip_val", "precision")}
    return {"seed": c["seed"], "data": data, "model": model, "trainer": trainer}


def instantiate_checked(config: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate that lets seqlab's one-sentence user errors through unwrapped."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, SeqlabError):
            raise e.__cause__ from None
        raise


def load_vectors(model: pl.LightningModule, dm: pl.LightningDataModule, cfg: DictConfig) -> dict[str, Any]:
    """Initialise the embedding rows of the vocabulary from pretrained vectors; returns coverage statistics."""
    spec = str(cfg.model.vectors)
    if spec not in KNOWN_VECTORS:
        spec = to_absolute_path(str(Path(spec).expanduser())) if ":" not in spec[2:] else spec
    matrix, stats = build_embedding_matrix(dm.vocab.itos, spec, cfg.model.embedding_dim,
                                           Path(to_absolute_path(str(Path(cfg.paths.cache_dir).expanduser()))),
                                           seed=cfg.seed, train_counts=dm.word_counts())
    with torch.no_grad():
        model.encoder.embedding.weight.copy_(matrix)
    log.info("Vectors %s: %d/%d vocabulary rows found (%.1f%%), %.1f%% of training tokens covered", cfg.model.vectors,
             stats["found"], stats["total"], 100 * stats["vocab_coverage"], 100 * (stats["token_coverage"] or 0))
    return {"vectors_vocab_coverage": stats["vocab_coverage"], "vectors_token_coverage": stats["token_coverage"]}


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("root", "train_file", "val_file", "test_file"):
        if data_cfg.get(key):
            data_cfg[key] = to_absolute_path(str(Path(data_cfg[key]).expanduser()))
    return instantiate_checked(data_cfg, cache_dir=to_absolute_path(str(Path(cfg.paths.cache_dir).expanduser())),
                       seed=cfg.seed)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one configuration; returns (and writes to metrics.json) the final metrics."""
    check_train_config(cfg)  # a bad setting is one clear error before any data is prepared
    start = time.time()
    run_dir, run_name, overrides = _run_identity(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.flush_denormal:
        torch.set_flush_denormal(True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    model = instantiate_checked(cfg.model, metadata=dm.metadata, _recursive_=False)
    model.inference_info = dm.inference_info()
    vector_stats = load_vectors(model, dm, cfg) if cfg.model.get("vectors") else {}
    log.info("Model: %d parameters, LSTM backend %s", model.num_parameters, cfg.model.backend)

    logger = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=run_name, default_hp_metric=False)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=MONITOR, mode="max",  # last.ckpt: resume_callbacks
                           filename="best-epoch{epoch:02d}-acc{val/acc:.4f}", auto_insert_metric_name=False)
    resume = resume_callbacks(cfg.seed, run_dir / "checkpoints", cfg.get("checkpoint_every_n_steps"))
    callbacks: list[pl.Callback] = [ckpt, EpochSummary(), *resume]
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", **cfg.early_stopping))
    if cfg.model.get("scheduler"):
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))  # the learning rate as a TensorBoard curve
    callbacks += [instantiate(spec) for spec in callback_specs(cfg.get("callbacks"))]  # the user's, by _target_
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir),
                                      use_distributed_sampler=False)  # our bucketing sampler shards by rank itself
    trainer.fit(model, datamodule=dm, ckpt_path=resolve_ckpt_path(cfg.ckpt_path))
    best, last = ckpt.best_model_path or None, latest_checkpoint(run_dir / "checkpoints")  # before test() reloads
    test_results = trainer.test(model, datamodule=dm, ckpt_path=best or "last", verbose=True)[0]

    metrics: dict[str, Any] = {
        "val_acc": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        **model.results_as_metrics(test_results),
        "best_checkpoint": best,
        "last_checkpoint": last,
        "epochs": trainer.current_epoch,
        "num_parameters": model.num_parameters,
        "wall_time_s": round(time.time() - start, 2),
        "overrides": overrides,
        **vector_stats,
        "run_dir": str(run_dir),
    }
    logger.log_hyperparams(hparams_of(cfg), {f"hparams/{k}": metrics[k] for k in HPARAM_METRICS
                                             if isinstance(metrics.get(k), float)})
    if trainer.is_global_zero:
        atomic_write_text(json.dumps(metrics, indent=2) + "\n", run_dir / "metrics.json")
        log.info("Metrics: %s", json.dumps({k: metrics[k] for k in ("val_acc", "test_acc", "wall_time_s")}))
    return metrics
