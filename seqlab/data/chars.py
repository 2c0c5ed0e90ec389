"""Character ids of words for a character encoder: the character vocabulary and fixed-width id rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from seqlab.data.vocab import PAD, PAD_INDEX, UNK, UNK_INDEX


def char_vocabulary(words: Iterable[tuple[str, int]]) -> list[str]:
    """`<pad>`, `<unk>`, then every character of the (word, count) pairs, most frequent first (ties: by code)."""
    seen: Counter = Counter()
    for word, count in words:
        for c in word:
            seen[c] += count
    return [PAD, UNK, *sorted(seen, key=lambda c: (-seen[c], c))]


def encode_chars(words: Sequence[str], chars: Sequence[str], max_len: int) -> torch.Tensor:
    """(len(words), max_len) int64: each word's first `max_len` character ids, PAD_INDEX after its end, UNK_INDEX
    for characters outside `chars`. The word `<unk>` is one unknown character, `<pad>` none."""
    index = {c: i for i, c in enumerate(chars)}
    table = torch.full((len(words), max_len), PAD_INDEX, dtype=torch.int64)
    for i, w in enumerate(words):
        if w == PAD:
            continue
        ids = [UNK_INDEX] if w == UNK else [index.get(c, UNK_INDEX) for c in w[:max_len]]
        table[i, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return table
