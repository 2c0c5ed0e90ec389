"""Collate examples into padded batches with true lengths."""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100  # label of padding positions in tagging; the loss and metrics skip it


def pad(seqs: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """(B, T_max) int64 tensor of right-padded sequences."""
    out = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), value, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


class Collate:
    """Examples (ids, label[, unseen]) -> {"tokens": (B, T), "lengths": (B,), "labels": (B,) or (B, T)[, "unseen"]}.

    A label is an int for classification or a sequence of tag ids for tagging (padded with IGNORE_INDEX). An
    optional third item flags words unseen in training; it becomes a (B, T) bool "unseen" (False on padding).
    """

    def __init__(self, pad_index: int, tagging: bool):
        self.pad_index, self.tagging = pad_index, tagging

    def __call__(self, examples: Sequence[tuple]) -> dict[str, torch.Tensor]:
        ids = [torch.as_tensor(e[0], dtype=torch.int64) for e in examples]
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        if (lengths == 0).any():
            raise ValueError("an example has no tokens; empty examples must be filtered out before batching")
        if self.tagging:
            labels = pad([torch.as_tensor(e[1], dtype=torch.int64) for e in examples], IGNORE_INDEX)
        else:
            labels = torch.tensor([int(e[1]) for e in examples], dtype=torch.int64)
        batch = {"tokens": pad(ids, self.pad_index), "lengths": lengths, "labels": labels}
        if len(examples[0]) == 3:
            batch["unseen"] = pad([torch.as_tensor(e[2]) for e in examples], 0).bool()
        return batch
