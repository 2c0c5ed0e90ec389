"""Collate examples into padded batches with true lengths."""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100
UNK_INDEX = 1  # label of padding positions in tagging; the loss and metrics skip it


def pad(seqs: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """(B, T_max) int64 tensor of right-padded sequences."""
    out = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), value, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


class Collate:
    """Items from SequenceDataset -> a batch dict of tensors.

    Always: "tokens" (B, T) padded ids, "lengths" (B,), "labels" (B,) for classification or (B, T) tag ids padded
    with IGNORE_INDEX for tagging. With items' "forms" (full-vocabulary ids): "unseen" (B, T) bool, True for words
    absent from training (`never_seen` table), and "chars" (B, T, W) character ids (`char_table`), 0 on padding.
    """

    def __init__(self, pad_index: int, tagging: bool, never_seen: torch.Tensor | None = None,
                 char_table: torch.Tensor | None = None, unk_replace: float = 0.0, rare: torch.Tensor | None = None):
        self.pad_index, self.tagging = pad_index, tagging
        self.never_seen, self.char_table = never_seen, char_table
        self.unk_replace, self.rare = unk_replace, rare  # training only: rare ids -> <unk> with this probability

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        ids = [torch.as_tensor(e["ids"], dtype=torch.int64) for e in items]
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        if (lengths == 0).any():
            raise ValueError("an example has no tokens; empty examples must be filtered out before batching")
        if self.tagging:
            labels = pad([torch.as_tensor(e["label"], dtype=torch.int64) for e in items], IGNORE_INDEX)
        else:
            labels = torch.tensor([int(e["label"]) for e in items], dtype=torch.int64)
        tokens = pad(ids, self.pad_index)
        if self.unk_replace > 0 and self.rare is not None:
            drop = self.rare[tokens] & (torch.rand(tokens.shape) < self.unk_replace)
            tokens = tokens.masked_fill(drop, UNK_INDEX)
        batch = {"tokens": tokens, "lengths": lengths, "labels": labels}
        if "forms" in items[0]:
            forms = pad([torch.as_tensor(e["forms"], dtype=torch.int64) for e in items], 0)
            if self.never_seen is not None:
                batch["unseen"] = self.never_seen[forms] & (forms != 0)
            if self.char_table is not None:
                batch["chars"] = self.char_table[forms]
        return batch
