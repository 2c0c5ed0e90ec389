"""The corpus builder every tagging datamodule shares (CoNLL-U POS, CoNLL column files).

The tag set is read from the training sentences alone (most frequent first), so the model's shape never depends on
the test file; tokens whose gold tag training lacks carry UNSEEN_LABEL and count as errors.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seqlab.data.cache import Ragged
from seqlab.data.vocab import PAD, UNK, UNK_INDEX, UNSEEN_LABEL

log = logging.getLogger(__name__)
Sentences = list[tuple[list[str], list[str]]]


def tagging_corpus(sents: dict[str, Sentences], lowercase: bool = False,
                   labels: list[str] | None = None) -> dict[str, Any]:
    """The cached-corpus dict of SequenceDataModule from (words, tags) sentences per split.

    The full vocabulary is the training words by frequency (ties alphabetical), then word forms that occur only in
    val/test (training count 0: never kept in the vocabulary, but their characters feed a character encoder and
    they are flagged unseen). `labels`: the tag set, when the caller derives it from the training data itself (e.g.
    every tag of a span scheme over the training entity types); default: the training tags, most frequent first."""
    if lowercase:
        sents = {k: [([w.lower() for w in ws], ts) for ws, ts in v] for k, v in sents.items()}
    words = Counter(w for ws, _ in sents["train"] for w in ws)
    itos = [PAD, UNK, *sorted(words, key=lambda t: (-words[t], t))]
    itos += sorted({w for k, v in sents.items() if k != "train" for ws, _ in v for w in ws} - set(words))
    if labels is None:
        tag_counts = Counter(t for _, ts in sents["train"] for t in ts)
        labels = sorted(tag_counts, key=lambda t: (-tag_counts[t], t))
    unseen = sorted({t for k, v in sents.items() if k != "train" for _, ts in v for t in ts} - set(labels))
    if unseen:
        log.warning("Tags absent from the training data (their tokens count as errors): %s", ", ".join(unseen))
    stoi, tag_id = {t: i for i, t in enumerate(itos)}, {t: i for i, t in enumerate(labels)}
    corpus: dict[str, Any] = {"itos": itos, "labels": labels}
    for k, v in sents.items():
        corpus[k] = {"ids": Ragged.from_lists([[stoi.get(w, UNK_INDEX) for w in ws] for ws, _ in v]).state(),
                     "labels": Ragged.from_lists([[tag_id.get(t, UNSEEN_LABEL) for t in ts] for _, ts in v]).state()}
    return corpus
