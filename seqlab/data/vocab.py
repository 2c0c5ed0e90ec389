"""Vocabulary: token <-> id, `<pad>` = 0 and `<unk>` = 1, built from training counts only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
PAD_INDEX, UNK_INDEX = 0, 1  # every vocabulary starts with these two; the one place the ids are written
IGNORE_INDEX = -100  # label id of padding positions (per-token labels); loss and metrics skip them
UNSEEN_LABEL = -1  # label id of a gold label absent from the training data: never predicted, always an error


class Vocab:
    """Maps tokens to ids. Index 0 is `<pad>`, 1 is `<unk>`; the rest follow by descending frequency."""

    def __init__(self, itos: Sequence[str]):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"a Vocab must start with {PAD!r}, {UNK!r}; got {list(itos[:2])}")
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a Vocab's tokens must be unique")

    pad_index, unk_index = PAD_INDEX, UNK_INDEX

    @classmethod
    def from_counts(cls, counts: Counter | dict[str, int], max_size: int | None = None, min_freq: int = 1) -> Vocab:
        """Keep tokens seen at least `min_freq` times, the `max_size` most frequent (ties: alphabetical)."""
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept])

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], max_size: int | None = None, min_freq: int = 1) -> Vocab:
        counts: Counter = Counter()
        for seq in sequences:
            counts.update(seq)
        return cls.from_counts(counts, max_size=max_size, min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, UNK_INDEX) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]


def select_by_counts(counts: torch.Tensor, max_size: int | None, min_freq: int) -> torch.Tensor:
    """Ids (into a full vocabulary whose rows 0, 1 are `<pad>`, `<unk>`) kept by `min_freq` and `max_size`.

    counts: (V_full,) training counts per full-vocabulary id. Returns kept ids, most frequent first (ties: lower
    id first), excluding 0 and 1. The full vocabulary is sorted by frequency on a superset of the training data,
    so this lets a cached id stream be re-vocabularised in milliseconds instead of re-tokenising the corpus.
    """
    ids = torch.arange(2, counts.numel())
    c = counts[2:]
    keep = c >= max(min_freq, 1)
    ids, c = ids[keep], c[keep]
    order = torch.sort(-c, stable=True).indices  # stable: ties keep id order
    ids = ids[order]
    return ids if max_size is None else ids[:max_size]
