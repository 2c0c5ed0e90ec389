"""Label metrics from one confusion matrix: accuracy, macro-F1, per-class accuracy, OOV accuracy (DDP-reduced).

torchmetrics is imported here, not by the task modules' import path, so prediction stays light.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from seqlab.data.vocab import IGNORE_INDEX


class LabelScores(Metric):
    """Accumulates a (C+1, C+1) confusion matrix (rows gold, columns predicted) over label ids.

    Gold ids < 0 other than IGNORE_INDEX (a label the training data never had) go to the extra row C: the model
    cannot predict them, so they always count as errors. `compute()` gives `acc`, `macro_f1` (mean F1 over the
    classes that occur as gold or prediction, as torchmetrics' macro average) and, with `unseen` word flags,
    `oov_acc` (accuracy on words never seen in training; NaN when there is none).
    """

    full_state_update = False

    def __init__(self, num_labels: int, track_unseen: bool = False):
        super().__init__()
        self.num_labels, self.track_unseen = num_labels, track_unseen
        n = num_labels + 1
        self.add_state("confusion", torch.zeros(n, n, dtype=torch.long), dist_reduce_fx="sum")
        if track_unseen:
            self.add_state("oov_correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
            self.add_state("oov_total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, labels: torch.Tensor, unseen: torch.Tensor | None = None) -> None:
        """preds, labels: same shape ((B,) or (B, T)); unseen: bool, same shape (tagging)."""
        real = labels != IGNORE_INDEX
        gold, pred = labels[real], preds[real]
        gold = torch.where(gold < 0, torch.full_like(gold, self.num_labels), gold)
        n = self.num_labels + 1
        self.confusion += torch.bincount(gold * n + pred, minlength=n * n).view(n, n)
        if self.track_unseen and unseen is not None:
            u = unseen[real]
            self.oov_correct += (pred[u] == gold[u]).sum()
            self.oov_total += u.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        cm = self.confusion.double()
        tp, gold, predicted = cm.diag(), cm.sum(1), cm.sum(0)
        total = cm.sum()
        out = {"acc": tp.sum() / total if total > 0 else torch.tensor(float("nan"))}
        present = (gold + predicted) > 0
        f1 = 2 * tp / (gold + predicted).clamp(min=1)
        out["macro_f1"] = f1[present].mean() if present.any() else torch.tensor(float("nan"))
        if self.track_unseen:
            out["oov_acc"] = (self.oov_correct / self.oov_total).double() if self.oov_total > 0 \
                else torch.tensor(float("nan"))
        return out

    def per_class(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(accuracy, support) per training label: recall of each gold class and its gold count."""
        cm = self.confusion[: self.num_labels, : self.num_labels + 1]
        support = cm.sum(1)
        return cm.diag().double() / support.clamp(min=1), support

    def training_label_confusion(self) -> torch.Tensor:
        """The (C, C) block of the training labels (the unseen-label row is reported separately)."""
        return self.confusion[: self.num_labels, : self.num_labels]
