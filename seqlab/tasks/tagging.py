"""Sequence tagging: one label per token (part-of-speech tags, ...), with OOV and per-tag figures at test time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seqlab.data.collate import pad
from seqlab.data.vocab import IGNORE_INDEX
from seqlab.models.heads import CRFHead, TokenHead
from seqlab.tasks import register_task
from seqlab.tasks.base import Task

TOP_TAGS_SHOWN = 10  # the confusion matrix shows the most frequent tags and folds the rest into "other"


@register_task("tagging")
class Tagging(Task):
    """Tags (B, T), padded with IGNORE_INDEX; validation token accuracy selects checkpoints.

    Tags that occur in validation or test data but never in training are not labels of the model (its shape comes
    from the training data alone): those tokens carry UNSEEN_LABEL and always count as errors.

    Heads: `linear` (softmax per token) or `crf` (linear-chain CRF, seqlab.models.heads.CRFHead). With
    `model.crf_constraints=true` the CRF forbids the transitions that `transitions()` rules out: none here (POS tags
    have no scheme, so the setting changes nothing), the tag scheme's for span tasks.
    """

    per_token = True
    heads = ("linear", "crf")

    @classmethod
    def collate_labels(cls, labels: Sequence[torch.Tensor]) -> torch.Tensor:
        return pad([torch.as_tensor(y, dtype=torch.int64) for y in labels], IGNORE_INDEX)

    def build_head(self, input_size: int, dropout: float, head: str = "linear", crf_constraints: bool = True,
                   **options: Any) -> nn.Module:
        self.check_head(head)
        if head == "crf":
            constraints = self.transitions() if crf_constraints else None
            return CRFHead(input_size, len(self.labels), dropout, constraints)
        return TokenHead(input_size, len(self.labels), dropout)

    def transitions(self):
        """Allowed (transitions, first, last) tags for a CRF head (seqlab.tasks.schemes.Transitions), or None when
        every tag may follow every other (tags without a scheme)."""
        return None

    def evaluator(self, split: str) -> nn.Module:
        from seqlab.tasks.metrics import LabelScores

        return LabelScores(len(self.labels), track_unseen=split == "test")

    def update(self, evaluator: nn.Module, preds: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        evaluator.update(preds, batch["labels"], batch.get("unseen"))

    def metric_names(self, split: str) -> list[str]:
        return {"train": ["acc"], "val": ["acc", "macro_f1"]}.get(split, ["acc", "macro_f1", "oov_acc"])

    def undefined_reason(self, key: str) -> str:
        if key.endswith("oov_acc"):
            return "no test token is absent from the training data"
        return super().undefined_reason(key)

    def test_report(self, evaluator: nn.Module, experiment: Any) -> None:
        from seqlab.models import figures

        names = [*self.labels, figures.NOT_IN_TRAINING]
        cm = evaluator.confusion.cpu()
        if cm[-1].sum() == 0:  # every gold tag of the test data is a training tag
            names, cm = names[:-1], cm[:-1, :-1]
        experiment.add_figure("test/confusion_matrix", figures.confusion_matrix_figure(names, cm, TOP_TAGS_SHOWN))
        experiment.add_text("test/confusion_matrix", figures.confusion_table(names, cm))
        acc, support = evaluator.per_class()
        experiment.add_figure("test/per_class_accuracy",
                              figures.per_class_accuracy_figure(self.labels, acc.cpu(), support.cpu()))
        experiment.add_text("test/per_class_accuracy", figures.per_class_table(self.labels, acc.cpu(), support.cpu()))

    def record(self, tokens: list[str], pred: torch.Tensor, confidence: torch.Tensor) -> dict[str, Any]:
        return {"tokens": tokens, "tags": [self.labels[k] for k in pred[:len(tokens)].tolist()]}

    def empty_record(self, tokens: list[str]) -> dict[str, Any]:
        return {"tokens": [], "tags": []}

    def text(self, record: dict[str, Any]) -> str:
        """`The/DET dog/NOUN barks/VERB ./PUNCT`."""
        return " ".join(f"{t}/{g}" for t, g in zip(record["tokens"], record["tags"]))
