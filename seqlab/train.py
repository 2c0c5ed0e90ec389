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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

from seqlab import threads
from seqlab.allocator import reuse_freed_memory
from seqlab.board import BoardLogger, call_text
from seqlab.callbacks import EpochSummary
from seqlab.callbacks_resume import (
    check_checkpoint_fits,
    checkpoint_to_resume,
    latest_checkpoint,
    read_resume_checkpoint,
    resume_callbacks,
)
from seqlab.checks import callback_specs, check_batches, check_train_config
from seqlab.data.cache import atomic_write_text
from seqlab.data.vectors import KNOWN_VECTORS, build_embedding_matrix, words_with_vectors
from seqlab.errors import ConfigError, SeqlabError
from seqlab.metadata import Metadata
from seqlab.models.module import monitored
from seqlab.naming import task_overrides, tensorboard_location
from seqlab.paths import user_path
from seqlab.swa import swa_callback, validate_average

log = logging.getLogger(__name__)


def _run_identity(cfg: DictConfig) -> tuple[Path, dict[str, Any], list[str]]:
    """(run directory, TensorBoardLogger's save_dir/name/version (seqlab.naming), command-line overrides)."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        out = Path(cfg.paths.output_dir or hc.runtime.output_dir)
        return out, tensorboard_location(out, hc), task_overrides(hc)
    if not cfg.paths.output_dir:
        raise ValueError("paths.output_dir must be set when train() runs outside a Hydra app")
    return Path(cfg.paths.output_dir), tensorboard_location(Path(cfg.paths.output_dir), None), []


TRAINER_DISPLAY_KEYS = ("_target_", "enable_progress_bar", "log_every_n_steps", "num_sanity_val_steps")


def hparams_of(cfg: DictConfig, metadata: Metadata | None = None) -> dict[str, Any]:
    """The run's settings for TensorBoard's HParams tab, by their command-line keys (`model.hidden_size`); locations,
    display and resume settings left out; the optimizer and scheduler as one value each (`Adam()`, plus model.lr);
    with `metadata`, the dataset, task and monitored metric as the run resolved them (seqlab.board orders them)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    model, trainer = c["model"], c["trainer"]
    optimizer = model.pop("optimizer", None) or {}
    task = metadata.make_task() if metadata is not None else None
    monitor = monitored(task, cfg.get("monitor"), cfg.get("monitor_mode")) if task is not None else (None, None)
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return {
        "data": metadata.dataset if metadata is not None else c["data"]["_target_"].rsplit(".", 1)[-1],
        "data.task": metadata.task if metadata is not None else c["data"].get("task"),
        **{f"data.{k}": v for k, v in c["data"].items() if k not in ("_target_", "task", "name", *PATH_KEYS)},
        **{f"model.{k}": v for k, v in model.items() if k not in ("_target_", "scheduler")},
        "model.optimizer": call_text(optimizer, leave_out=("lr",)),
        "model.lr": optimizer.get("lr"),
        "model.scheduler": call_text(model.get("scheduler")),
        **{f"trainer.{k}": v for k, v in trainer.items() if k not in TRAINER_DISPLAY_KEYS},
        "seed": c["seed"],
        "threads": torch.get_num_threads(),  # what torch used (threads=null: its default)
        "flush_denormal": c.get("flush_denormal"),
        "reuse_memory": c.get("reuse_memory"),
        "monitor": monitor[0] or c.get("monitor"),
        "monitor_mode": monitor[1] or c.get("monitor_mode"),
        "early_stopping": c.get("early_stopping"),
        "experiment": choices.get("experiment"),
    }


def instantiate_checked(config: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate that lets seqlab's one-sentence user errors through unwrapped."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, SeqlabError):
            raise e.__cause__ from None
        raise


def check_monitors(task: Any, monitor: str, cfg: DictConfig) -> None:
    """`monitor` and `model.scheduler.monitor` must name an epoch-level metric the task logs."""
    logged = ["val/loss", *(f"val/{n}" for n in task.metric_names("val")), "train/loss", "train/acc"]
    wanted = {"monitor": monitor}
    if cfg.model.get("scheduler") and cfg.model.scheduler.get("monitor"):
        wanted["model.scheduler.monitor"] = cfg.model.scheduler.monitor
    for key, name in wanted.items():
        if name not in logged:
            raise ConfigError(f"{key}={name} is not a metric the {task.name} task logs; use one of "
                              f"{', '.join(logged)}.")


def cpu_processes(cfg: DictConfig) -> int:
    """Training processes this run starts on this machine's CPU (DDP on CPU: one per device), else 1."""
    t = cfg.trainer
    if str(t.get("accelerator")) == "cpu" and str(t.get("strategy", "")).startswith("ddp") and \
            isinstance(t.get("devices"), int):
        return max(1, t.devices)
    return 1


def construct(make: Any, **kwargs: Any) -> Any:
    """Call a partial from `instantiate_checked(..., _partial_=True)`; an unknown config key is a ConfigError."""
    try:
        return make(**kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ConfigError(f"{e}; check the config keys against configs/.") from None
        raise


def vectors_spec(cfg: DictConfig) -> str:
    """model.vectors as build_embedding_matrix takes it: a known name, or a path made absolute."""
    spec = str(cfg.model.vectors)
    if spec not in KNOWN_VECTORS:
        spec = str(user_path(spec)) if ":" not in spec[2:] else spec
    return spec


def extend_vocabulary(dm: pl.LightningDataModule, cfg: DictConfig) -> int:
    """model.extend_vocab: keep the data's word forms that the pretrained vectors know (rare training words and
    words only in validation / test data), each with its pretrained vector; returns how many were added."""
    words = words_with_vectors(dm.corpus_words(), vectors_spec(cfg), user_path(cfg.paths.cache_dir))
    added = dm.extend_vocabulary(words)
    log.info("model.extend_vocab: %d word forms of the data outside the training vocabulary have pretrained vectors "
             "and were added (vocabulary %d)", added, len(dm.vocab))
    return added


def load_vectors(model: pl.LightningModule, dm: pl.LightningDataModule, cfg: DictConfig) -> dict[str, Any]:
    """Initialise the embedding rows of the vocabulary from pretrained vectors; returns coverage statistics."""
    matrix, stats = build_embedding_matrix(dm.vocab.itos, vectors_spec(cfg), cfg.model.embedding_dim,
                                           user_path(cfg.paths.cache_dir),
                                           seed=cfg.seed, train_counts=dm.word_counts())
    with torch.no_grad():
        model.net.encoder.embedding.weight.copy_(matrix)
    log.info("Vectors %s: %d/%d vocabulary rows found (%.1f%%), %.1f%% of training tokens covered", cfg.model.vectors,
             stats["found"], stats["total"], 100 * stats["vocab_coverage"], 100 * (stats["token_coverage"] or 0))
    return {"vectors_vocab_coverage": stats["vocab_coverage"], "vectors_token_coverage": stats["token_coverage"]}


PATH_KEYS = ("root", "train_file", "val_file", "test_file")  # data.* keys that hold paths
SPLITS = ("train", "val", "test")


def build_datamodule(cfg: DictConfig, metadata: Metadata | None = None) -> pl.LightningDataModule:
    """The configured datamodule (paths made absolute against the directory the command ran from); with
    `metadata`, it encodes with that vocabulary and those labels (a checkpoint's) instead of building its own."""
    missing = sorted(OmegaConf.missing_keys(cfg.data))  # full keys: data.train_file
    if missing:
        raise ConfigError(f"{missing[0]} must be set (it has no default); add {missing[0]}=... to the command line.")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    for key in PATH_KEYS:
        if data_cfg.get(key):
            data_cfg[key] = str(user_path(data_cfg[key]))
    make = instantiate_checked(data_cfg, cache_dir=str(user_path(cfg.paths.cache_dir)),
                               seed=cfg.seed, _convert_="all", _partial_=True)
    return construct(make, **({"metadata": metadata} if metadata is not None else {}))


def make_model(cfg: DictConfig, metadata: Metadata) -> pl.LightningModule:
    """The configured LightningModule for `metadata`, monitoring the task's metric (or `monitor`)."""
    monitor = list(monitored(metadata.make_task(), cfg.get("monitor"), cfg.get("monitor_mode")))
    # objects go to the constructor directly: Hydra would turn a dataclass argument into a config
    return construct(instantiate_checked(cfg.model, _recursive_=False, _partial_=True), metadata=metadata,
                     monitor=monitor)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one configuration; returns (and writes to metrics.json) the final metrics."""
    check_train_config(cfg)  # a bad setting is one clear error before any data is prepared
    start = time.time()
    run_dir, tensorboard, overrides = _run_identity(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    hc = HydraConfig.get() if HydraConfig.initialized() else None
    threads.configure(cfg.threads, hc, processes=cpu_processes(cfg))
    if cfg.flush_denormal:
        torch.set_flush_denormal(True)
    if cfg.reuse_memory:
        reuse_freed_memory()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    resume_from = checkpoint_to_resume(cfg.get("ckpt_path"), run_dir / "checkpoints")  # None: train afresh
    resumed = read_resume_checkpoint(resume_from) if resume_from else None
    if resumed is not None:  # the run's model settings on the checkpoint's data: its weights must fit, before any
        try:                 # data is prepared (the data itself is compared once known, below)
            ckpt_model = make_model(cfg, Metadata.from_dict(resumed["seqlab"].get("metadata")))
        except SeqlabError:  # e.g. a checkpoint of another task: the comparison with the data says so
            ckpt_model = None
        if ckpt_model is not None:
            check_checkpoint_fits(resume_from, resumed, ckpt_model)

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    extended = {}
    if cfg.model.get("extend_vocab"):  # (checked before the data: it needs model.vectors)
        extended = {"vocab_extended_by": extend_vocabulary(dm, cfg)}
    metadata = dm.metadata
    model = make_model(cfg, metadata)
    monitor, mode = model.monitor_name, model.monitor_mode
    check_monitors(model.task, monitor, cfg)
    if resumed is not None:
        check_checkpoint_fits(resume_from, resumed, model)
        del resumed  # Lightning reads the file again
    vector_stats = load_vectors(model, dm, cfg) if cfg.model.get("vectors") else {}
    log.info("Model: %d parameters, task %s, LSTM backend %s; checkpoints selected on %s (%s)",
             model.num_parameters, metadata.task, cfg.model.backend, monitor, mode)

    logger = BoardLogger(**tensorboard)  # metric-first tags, HParams and summary text: seqlab/board.py
    short = monitor.split("/", 1)[1]
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=monitor, mode=mode,  # last.ckpt: resume_callbacks
                           filename=f"best-epoch{{epoch:02d}}-{short}{{{monitor}:.4f}}", auto_insert_metric_name=False)
    resume = resume_callbacks(cfg.seed, run_dir / "checkpoints", cfg.get("checkpoint_every_n_steps"))
    summary = EpochSummary()
    callbacks: list[pl.Callback] = [ckpt, summary, *resume]
    governor = threads.governor(cfg.threads, bool(cfg.trainer.get("deterministic")))
    if governor is not None and cpu_processes(cfg) == 1:
        callbacks.append(governor)
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, **cfg.early_stopping))
    callbacks.append(LearningRateMonitor(logging_interval="epoch"))  # the rate each epoch trains with, as a curve
    callbacks += [instantiate(spec) for spec in callback_specs(cfg.get("callbacks"))]  # the user's, by _target_
    swa = swa_callback(OmegaConf.to_container(cfg.model.swa, resolve=True) if cfg.model.get("swa") else None)
    callbacks += [swa] if swa is not None else []  # model.swa: stochastic weight averaging (seqlab/swa.py)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir),
                                      use_distributed_sampler=False)  # our bucketing sampler shards by rank itself
    per_process = {s: -(-len(getattr(dm, f"{s}_dataloader")()) // trainer.world_size) for s in SPLITS if
                   dm.has_split(s)}  # the bucketing sampler's count on each rank
    check_batches(OmegaConf.to_container(cfg.trainer, resolve=True), per_process)
    if cfg.get("ckpt_path") == "last" and resume_from is None:
        log.warning("ckpt_path=last: %s holds no last*.ckpt yet, so training starts afresh (to resume, set "
                    "hydra.run.dir to the interrupted run's folder).", run_dir / "checkpoints")
    trainer.fit(model, datamodule=dm, ckpt_path=resume_from)
    best, last = ckpt.best_model_path or None, latest_checkpoint(run_dir / "checkpoints")  # before test() reloads
    averaged = validate_average(trainer, model, dm, swa, ckpt, monitor, mode) if swa is not None else {}
    tested = averaged["checkpoint"] if averaged.get("selected") else best  # the better on validation
    test_results = {}
    if dm.has_split("test"):
        test_results = trainer.test(model, datamodule=dm, ckpt_path=tested or "last", verbose=True)[0]
    else:
        log.info("No test split (data.test_file not given): the best checkpoint is not tested.")

    monitor_key = monitor.replace("/", "_")
    metrics: dict[str, Any] = {
        monitor_key: float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "monitor": monitor_key,
        "monitor_mode": mode,
        **model.task.as_metrics(test_results),
        "best_checkpoint": best,
        "last_checkpoint": last,
        "epochs": trainer.current_epoch,
        "num_parameters": model.num_parameters,
        "train_tokens_per_s": round(summary.median_rate()) if summary.median_rate() else None,
        "wall_time_s": round(time.time() - start, 2),
        "overrides": overrides,
        **vector_stats,
        **extended,
        "run_dir": str(run_dir),
    }
    if swa is not None:  # the monitored value is the tested model's; the average's own score beside it
        metrics.update({f"swa_{monitor_key}": averaged.get("score"), "swa_checkpoint": averaged.get("checkpoint"),
                        "tested_checkpoint": tested})
        if averaged.get("selected"):
            metrics[monitor_key] = averaged["score"]
    logger.log_run(hparams_of(cfg, metadata), metrics, model.task, step=trainer.global_step)
    if trainer.is_global_zero:
        atomic_write_text(json.dumps(metrics, indent=2) + "\n", run_dir / "metrics.json")
        log.info("Metrics: %s", json.dumps({k: metrics.get(k) for k in (monitor_key, "test_acc", "wall_time_s")}))
    return metrics
