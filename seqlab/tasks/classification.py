"""Sequence classification: one label per text (sentiment, topic, ...), from pooled encoder features."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.models.heads import POOLINGS, PooledHead
from seqlab.tasks import register_task
from seqlab.tasks.base import Task

ALL_CLASSES_SHOWN = 20  # confusion matrices over more classes show the most frequent ones and "other"


@register_task("classification")
class Classification(Task):
    """Labels (B,); validation accuracy selects checkpoints; macro-F1 and a confusion matrix at test time."""

    @classmethod
    def carve_groups(cls, labels: torch.Tensor, n: int) -> list[torch.Tensor]:
        """Stratified: the validation carve takes the same fraction of every class."""
        return [torch.nonzero(labels == c).flatten() for c in labels.unique()]

    def build_head(self, input_size: int, dropout: float, head: str = "linear", pooling: str = "last",
                   **options: Any) -> nn.Module:
        self.check_head(head)
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}.")
        return PooledHead(input_size, len(self.labels), dropout, pooling)

    def evaluator(self, split: str) -> nn.Module:
        from seqlab.tasks.metrics import LabelScores

        return LabelScores(len(self.labels))

    def metric_names(self, split: str) -> list[str]:
        return ["acc"] if split == "train" else ["acc", "macro_f1"]

    def test_report(self, evaluator: nn.Module, experiment: Any) -> None:
        from seqlab.models import figures

        top_k = ALL_CLASSES_SHOWN if len(self.labels) > ALL_CLASSES_SHOWN else None
        cm = evaluator.training_label_confusion().cpu()
        experiment.add_figure("test/confusion_matrix", figures.confusion_matrix_figure(self.labels, cm, top_k))
        experiment.add_text("test/confusion_matrix", figures.confusion_table(self.labels, cm))

    def record(self, tokens: list[str], pred: torch.Tensor, confidence: torch.Tensor) -> dict[str, Any]:
        return {"label": self.labels[int(pred)], "probability": round(float(confidence), 6)}

    def empty_record(self, tokens: list[str]) -> dict[str, Any]:
        return {"label": None, "probability": None}

    def text(self, record: dict[str, Any]) -> str:
        """`pos 0.973` (an empty input: an empty line)."""
        return "" if record["label"] is None else f"{record['label']} {record['probability']:.3f}"
