"""What TensorBoard shows of a run: tags that group its charts, its row in HParams, its summary text.

Time Series groups charts by the part of a tag before the first "/", sorts the groups by name and opens the first
two. Lightning's metric names (`val/acc`, `train/loss_epoch`: what checkpointing, early stopping, schedulers and the
epoch line use) are therefore written metric-first, so the curves come first with train beside val:

    acc/train  acc/val  (the task's metrics: macro_f1/val, ...)     loss/train  loss/train_step  loss/val
    summary/<metrics.json key>   one value per run, what HParams shows (val_acc, test_acc, ..., NaN when undefined)
    test/...                     the task's test figures (Images) and tables (Text)
    training/lr  training/tokens_per_s  training/epoch

Test metrics are not charts: they are one value per run, in HParams and in the Text tab's `summary` of the run.

HParams takes its columns from the experiment summary of *one* run (the first it reads), so every run writes the same
metric columns: its own task's, then those of every other task kind (a POS and an IMDB run loaded together keep
`test_oov_acc`). A setting is shown by its command-line key (`model.hidden_size`) and stored under a name that sorts
the ones that matter first (HParams lists the settings that differ across the sweep first, then by name, and ticks
five); booleans are booleans, numbers numbers (the HParams tab prints 5 significant digits, `128.00`; Time Series'
run table, where setting columns can be added, shows `128`).
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

SPLIT_METRIC = re.compile(r"^(train|val)/(.+?)(_epoch)?$")
# Settings shown first, in this order (after those that vary in the sweep); the rest follow alphabetically.
FIRST_SETTINGS = ("data", "trainer.max_epochs", "trainer.limit_train_batches", "model.hidden_size", "model.num_layers",
                  "model.bidirectional", "model.cell", "model.embedding_dim", "model.char_encoder", "model.head",
                  "model.vectors", "model.lr", "model.optimizer", "model.scheduler", "model.dropout", "model.backend",
                  "seed", "trainer.max_time", "trainer.limit_val_batches", "trainer.limit_test_batches", "threads",
                  "experiment", "data.task")
AS_TEXT = ("trainer.limit_", "trainer.devices", "trainer.precision")  # 30 batches vs 1.0 of them; "auto" vs 1
NONE_AS_TEXT = {"model.char_encoder", "model.vectors", "model.scheduler", "trainer.max_time", "early_stopping",
                "experiment", "monitor"}  # unset settings that are text when set: "none" (others stay empty)
SWEPT_ALIASES = {"backend": ("model.backend",), "model.optimizer": ("model.optimizer", "model.lr"),
                 "model.optimizer.lr": ("model.lr",)}  # override keys -> the settings they change
RUN_COLUMNS = ("wall_time_s", "num_parameters", "epochs", "test_loss")  # HParams columns after the task's


def board_tag(key: str) -> str | None:
    """The TensorBoard tag of a metric Lightning logs; None: not a chart (test metrics, see `log_run`)."""
    if key in ("epoch", "train/tokens_per_s"):
        return "training/" + key.rsplit("/", 1)[-1]
    if key.startswith("lr-"):  # LearningRateMonitor: lr-Adam, lr-Adam/pg2 (parameter groups)
        return "training/lr" + (key[key.index("/"):] if "/" in key else "")
    if key.startswith("test/"):
        return None
    m = SPLIT_METRIC.match(key)
    if m is None:
        return key
    split, name = m.group(1), m.group(2)
    if name.endswith("_step"):  # train/loss_step: the per-batch loss
        return f"{name.removesuffix('_step')}/{split}_step"
    return f"{name}/{split}"


def hparam_name(key: str) -> str:
    """The stored name of setting `key`: a rank that HParams' sort by name turns into FIRST_SETTINGS' order."""
    return f"{FIRST_SETTINGS.index(key):02d} {key}" if key in FIRST_SETTINGS else f"99 {key}"


def ordered(settings: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(settings.items(), key=lambda kv: hparam_name(kv[0])))


def setting_value(key: str, value: Any) -> bool | float | str | None:
    """A setting as HParams stores it: bool, number or text; None (unset) is left out, or "none" for text settings."""
    if value is None:
        return "none" if key in NONE_AS_TEXT else ("all" if key.startswith("trainer.limit_") else None)
    if key.startswith(AS_TEXT):
        return str(value)
    if key == "model.vectors" and ("/" in str(value) or "\\" in str(value)):
        from seqlab.naming import short_value

        return short_value(str(value))  # a path: its file stem, as in run names
    if isinstance(value, (bool, int, float, str)):
        return value
    return call_text(value) if isinstance(value, dict) else str(value)


def call_text(spec: dict[str, Any] | None, leave_out: tuple[str, ...] = ()) -> str:
    """{_target_: torch.optim.lr_scheduler.StepLR, step_size: 2} -> "StepLR(step_size=2)"; None -> "none"."""
    if not spec:
        return "none"
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "_target_" and k not in leave_out)
    target = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
    return (f"{target}({args})" if args else target) if target else args


def task_columns(task, monitor_key: str | None = None) -> list[str]:
    """The task's HParams metric columns (metrics.json keys): the monitored validation score, the test metrics."""
    return [monitor_key or f"val_{task.monitor}", *(f"test_{m}" for m in task.metric_names("test"))]


def metric_columns(task, monitor_key: str) -> tuple[list[str], list[str]]:
    """(this run's columns, every column the experiment declares: those, then the other task kinds')."""
    from seqlab.tasks import TASKS, builtin_tasks, get_task

    own = [*task_columns(task, monitor_key), *RUN_COLUMNS]
    columns = own + task_columns(task)
    for name in dict.fromkeys([*builtin_tasks(), *TASKS]):
        try:
            kind = get_task(name)
            columns += [] if isinstance(task, kind) else task_columns(kind([]))
        except Exception:  # noqa: BLE001 - a task kind that cannot be built without labels or options: skip it
            continue
    return own, list(dict.fromkeys(columns))


def swept_settings(settings: dict[str, Any]) -> set[str]:
    """The settings that vary across this job's sweep (seqlab.naming reads the sweep's specification)."""
    from hydra.core.hydra_config import HydraConfig

    from seqlab.naming import varying_keys

    if not HydraConfig.initialized() or getattr(HydraConfig.get().mode, "name", "") != "MULTIRUN":
        return set()
    return settings_changed_by(varying_keys(HydraConfig.get()), settings)


def settings_changed_by(override_keys: set[str], settings: dict[str, Any]) -> set[str]:
    """The settings that command-line override keys change (`model.optimizer.lr` -> model.lr, `backend` ->
    model.backend, `model.scheduler.factor` -> model.scheduler; a config group such as `model` -> none)."""
    out = set()
    for key in override_keys:
        if key not in SWEPT_ALIASES:
            key = next((k for k in ("model.optimizer", "model.scheduler", "early_stopping") if key.startswith(k + ".")),
                       key)
        out |= set(SWEPT_ALIASES.get(key, (key,))) & set(settings)
    return out


def hparams_summaries(settings: dict[str, Any], columns: list[str], differs: set[str] = frozenset(),
                      start_time: float | None = None) -> list:
    """The HParams plugin's three summaries: the experiment (columns), this session's settings, its end."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def summary(tag: str, **data: Any) -> Summary:
        content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**data))
        out = Summary()
        out.value.add(tag=tag, metadata=content, tensor=metadata.NULL_TENSOR)
        return out

    types = {bool: api_pb2.DATA_TYPE_BOOL, float: api_pb2.DATA_TYPE_FLOAT64, int: api_pb2.DATA_TYPE_FLOAT64,
             str: api_pb2.DATA_TYPE_STRING}
    experiment = api_pb2.Experiment(time_created_secs=start_time or time.time())
    session = plugin_data_pb2.SessionStartInfo(start_time_secs=start_time or time.time())
    for key, raw in ordered(settings).items():
        value, name = setting_value(key, raw), hparam_name(key)
        info = experiment.hparam_infos.add(name=name, display_name=key, differs=key in differs,
                                           type=types.get(type(value), api_pb2.DATA_TYPE_UNSET))
        if isinstance(value, bool):
            info.domain_discrete.extend([False, True])
            session.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            session.hparams[name].number_value = value
        elif value is not None:
            session.hparams[name].string_value = value
    for column in columns:
        kind = api_pb2.DATASET_VALIDATION if column.startswith("val_") else api_pb2.DATASET_UNKNOWN
        experiment.metric_infos.add(name=api_pb2.MetricName(tag=f"summary/{column}"), display_name=column,
                                    dataset_type=kind)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return [summary(metadata.EXPERIMENT_TAG, experiment=experiment),
            summary(metadata.SESSION_START_INFO_TAG, session_start_info=session),
            summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)]


def summary_text(metrics: dict[str, Any]) -> str:
    """metrics.json for the Text tab: its numbers as a one-row Markdown table, the rest (monitor, checkpoints
    relative to the run folder, overrides) as a list below."""
    from pathlib import Path

    run_dir = metrics.get("run_dir")
    numbers = {k: v for k, v in metrics.items() if v is None or isinstance(v, (int, float)) and not isinstance(v, bool)}
    cells = ["—" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
             for v in numbers.values()]
    lines = ["| " + " | ".join(numbers) + " |", "|" + "---:|" * len(numbers), "| " + " | ".join(cells) + " |", ""]
    for key, value in metrics.items():
        if key in numbers:
            continue
        if isinstance(value, list):
            value = " ".join(map(str, value)) or "(none)"
        elif key != "run_dir" and run_dir and Path(str(value)).is_relative_to(run_dir):
            value = Path(str(value)).relative_to(run_dir)
        lines.append(f"- {key}: `{value}`")
    return "\n".join(lines)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


class BoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger with metric-first tags (`board_tag`) and a run's HParams row and summary."""

    def __init__(self, **kwargs: Any):
        super().__init__(default_hp_metric=False, **kwargs)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        tags = {board_tag(k): v for k, v in metrics.items()}
        if None in tags and all(board_tag(k) is None for k in metrics if k != "epoch"):
            return  # test metrics, and the epoch Lightning adds to them: not charts (see log_run)
        tags.pop(None, None)
        if tags:
            super().log_metrics(tags, step)

    @rank_zero_only
    def log_run(self, settings: dict[str, Any], metrics: dict[str, Any], task, step: int = 0) -> None:
        """After testing: `summary/<column>` scalars (NaN where undefined), the HParams summaries, the summary text."""
        own, columns = metric_columns(task, metrics["monitor"])
        for column in own:
            self.experiment.add_scalar(f"summary/{column}", _number(metrics.get(column)), step)
        start = time.time() - float(metrics.get("wall_time_s") or 0.0)
        writer = self.experiment._get_file_writer()  # as Lightning's own log_hyperparams writes them
        for summary in hparams_summaries(settings, columns, swept_settings(settings), start):
            writer.add_summary(summary, step)
        self.experiment.add_text("summary", summary_text(metrics), step)
        self.experiment.flush()
