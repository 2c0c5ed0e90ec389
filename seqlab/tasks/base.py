"""The Task interface: everything that differs between sequence tasks, asked for by the rest of seqlab.

Data side (class-level, no labels needed): how labels are stored and batched, how the validation split is carved.
Model side: the head (with its loss and decoding). Evaluation: the metrics of a split, which one is monitored,
the test figures, the metrics.json keys. Prediction: the record and the text line printed for one input.

A new task subclasses `Task` (or one of the built-in tasks), decorates it with `@register_task("name")`, and is
chosen with `data.task=name` (see seqlab/tasks/__init__.py); nothing else in seqlab changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from seqlab.errors import ConfigError


class Task:
    name: ClassVar[str] = "base"
    per_token: ClassVar[bool] = False  # one label per token (and word features: unseen flags, characters)
    monitor: ClassVar[str] = "acc"  # the validation metric that selects checkpoints ("val/<monitor>")
    monitor_mode: ClassVar[str] = "max"
    heads: ClassVar[tuple[str, ...]] = ("linear",)  # accepted values of model.head

    def __init__(self, labels: Sequence[str], **options: Any):
        if options:
            raise ConfigError(f"The {self.name} task takes no options; got {', '.join(options)}.")
        self.labels = list(labels)

    # -- data ------------------------------------------------------------------------------------------------------
    @classmethod
    def collate_labels(cls, labels: Sequence[Any]) -> torch.Tensor:
        """The labels of a batch's items -> a tensor ((B,) by default)."""
        return torch.tensor([int(y) for y in labels], dtype=torch.int64)

    @classmethod
    def carve_groups(cls, labels: Any, n: int) -> list[torch.Tensor]:
        """Index groups that the validation carve samples from proportionally (default: one group of all)."""
        return [torch.arange(n)]

    # -- model -----------------------------------------------------------------------------------------------------
    def build_head(self, input_size: int, dropout: float, head: str = "linear", **options: Any) -> nn.Module:
        """The output head (see seqlab.models.heads for the interface); `options` are the model config's."""
        raise NotImplementedError

    @classmethod
    def check_head(cls, head: str) -> None:
        """`model.head` is one of this task's heads (checked from the config alone, before any data is read)."""
        if head not in cls.heads:
            raise ConfigError(f"model.head={head} does not apply to the {cls.name} task; use one of "
                              f"{', '.join(cls.heads)}.")

    # -- evaluation ------------------------------------------------------------------------------------------------
    def evaluator(self, split: str) -> nn.Module:
        """A torchmetrics Metric for `split` whose `update(preds, batch)` accumulates and whose `compute()` returns
        {name: scalar tensor}; logged as "<split>/<name>" and written to metrics.json as "<split>_<name>"."""
        raise NotImplementedError

    def update(self, evaluator: nn.Module, preds: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        evaluator.update(preds, batch["labels"])

    def metric_names(self, split: str) -> list[str]:
        """The names `compute()` returns for `split` (HParams columns; constant per task)."""
        return ["acc"]

    def test_report(self, evaluator: nn.Module, experiment: Any) -> None:
        """Figures and tables for TensorBoard after testing (global rank zero; `experiment` a SummaryWriter)."""

    def undefined_reason(self, key: str) -> str:
        """Why metric `key` (a metrics.json key) came out NaN, for the warning that it is null."""
        return "no example contributed to it"

    def as_metrics(self, results: dict[str, float]) -> dict[str, float | None]:
        """Lightning's results ("test/acc") as metrics.json keys ("test_acc"); NaN (undefined) becomes None."""
        import logging

        out: dict[str, float | None] = {}
        for key, value in results.items():
            name = key.replace("/", "_")
            value = float(value)
            if math.isnan(value):
                logging.getLogger(__name__).warning("%s is undefined (null): %s.", name, self.undefined_reason(name))
                out[name] = None
            else:
                out[name] = value
        return out

    # -- prediction ------------------------------------------------------------------------------------------------
    def record(self, tokens: list[str], pred: torch.Tensor, confidence: torch.Tensor) -> dict[str, Any]:
        """The JSON object of one prediction (`pred`, `confidence`: this input's row of decode / confidence)."""
        raise NotImplementedError

    def empty_record(self, tokens: list[str]) -> dict[str, Any]:
        """The JSON object for an input with no tokens."""
        raise NotImplementedError

    def text(self, record: dict[str, Any]) -> str:
        """One readable output line for a record."""
        raise NotImplementedError
