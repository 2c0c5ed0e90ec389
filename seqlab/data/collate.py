"""Collate examples into padded batches with true lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from seqlab.data.vocab import PAD_INDEX, UNK_INDEX


def pad(seqs: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """(B, T_max) int64 tensor of right-padded sequences."""
    out = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), value, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


class Collate:
    """Items from SequenceDataset -> a batch dict of tensors.

    Always: "tokens" (B, T) ids padded with PAD_INDEX, "lengths" (B,), "labels" as the task batches them
    (`collate_labels`: (B,) per sequence, (B, T) per token padded with IGNORE_INDEX). With items' "forms"
    (full-vocabulary ids): "unseen" (B, T) bool, True for words absent from training (`never_seen` table), and
    "chars" (B, T, W) character ids (`char_table`), 0 on padding.
    """

    def __init__(self, collate_labels: Callable[[list], torch.Tensor], never_seen: torch.Tensor | None = None,
                 char_table: torch.Tensor | None = None, unk_replace: float = 0.0, rare: torch.Tensor | None = None):
        self.collate_labels = collate_labels
        self.never_seen, self.char_table = never_seen, char_table
        self.unk_replace, self.rare = unk_replace, rare  # training only: rare ids -> <unk> with this probability

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        ids = [torch.as_tensor(e["ids"], dtype=torch.int64) for e in items]
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        if (lengths == 0).any():
            raise ValueError("an example has no tokens; empty examples must be filtered out before batching")
        tokens = pad(ids, PAD_INDEX)
        if self.unk_replace > 0 and self.rare is not None:
            drop = self.rare[tokens] & (torch.rand(tokens.shape) < self.unk_replace)
            tokens = tokens.masked_fill(drop, UNK_INDEX)
        batch = {"tokens": tokens, "lengths": lengths, "labels": self.collate_labels([e["label"] for e in items])}
        if "forms" in items[0]:
            forms = pad([torch.as_tensor(e["forms"], dtype=torch.int64) for e in items], PAD_INDEX)
            if self.never_seen is not None:
                batch["unseen"] = self.never_seen[forms] & (forms != PAD_INDEX)
            if self.char_table is not None:
                batch["chars"] = self.char_table[forms]
        return batch
