"""Reference figures computed by hand in the tests (no torchmetrics, no Lightning loop), to compare runs against."""

from __future__ import annotations

import torch

from seqlab.data.vocab import IGNORE_INDEX


def hand_accuracy(model: torch.nn.Module, loader, max_batches: int | None = None, only: str | None = None) -> float:
    """Share of labelled positions whose highest logit is the label, over the loader's first `max_batches`
    batches (all by default). Labelled: all but padding (IGNORE_INDEX); a gold tag that training lacks
    (UNSEEN_LABEL) is a position the model cannot get right. `only="unseen"` counts the positions the batch flags
    as words unseen in training."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            logits = model(batch["tokens"], batch["lengths"], batch.get("chars"))
            labels = batch["labels"]
            keep = labels != IGNORE_INDEX
            if only is not None:
                keep &= batch[only]
            correct += int((logits.argmax(-1) == labels)[keep].sum())
            total += int(keep.sum())
    assert total > 0, "no labelled position to count"
    return correct / total
