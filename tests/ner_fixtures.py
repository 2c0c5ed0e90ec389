"""Tiny generated named-entity data in CoNLL column files (any tag scheme), for the span task's tests."""

from __future__ import annotations

import random
from pathlib import Path

from seqlab.tasks.schemes import Span, to_tags

NAMES = {"PER": [["John"], ["Mary"], ["Alice", "Smith"], ["Bob"], ["Li", "Wei"]],
         "LOC": [["Paris"], ["London"], ["New", "York"], ["Berlin"]],
         "ORG": [["IBM"], ["Acme", "Corp"], ["Google"], ["UN"]]}
TEMPLATES = [  # ("PER", ...) slots are filled with a name of that type; other items are words
    [("PER",), "lives", "in", ("LOC",), "."],
    [("PER",), "works", "for", ("ORG",), "."],
    [("ORG",), "opened", "an", "office", "in", ("LOC",), "!"],
    ["@", ("PER:user",), "thanks", ("PER",), "."],  # '@' and the user name: two PER entities, as in the BTC
    ["the", "weather", "is", "nice", "today", "."],
    [("LOC",), ("LOC",), "flights", "are", "cheap"],  # two adjacent LOC entities (IOB1 writes B- on the second)
]
USERS = ["bob99", "jdoe", "xyz_news"]


def sentence(rng: random.Random, names: dict[str, list[list[str]]] | None = None) -> tuple[list[str], list[Span]]:
    names = names or NAMES
    tokens: list[str] = []
    entities: list[Span] = []
    template = rng.choice(TEMPLATES)
    for item in template:
        if isinstance(item, str):
            tokens.append(item)
            continue
        kind = item[0]
        if kind == "PER:user":
            entities.append(Span("PER", len(tokens) - 1, len(tokens)))  # the '@' before it
            words = [rng.choice(USERS)]
            kind = "PER"
        else:
            words = rng.choice(names[kind])
        entities.append(Span(kind, len(tokens), len(tokens) + len(words)))
        tokens += words
    return tokens, entities


def conll_text(sents: list[tuple[list[str], list[Span]]], scheme: str = "IOB2", extra_column: bool = False,
               comments: bool = False) -> str:
    """Column-file text: token, [a POS-like column,] tag; blank lines between sentences; with `comments`, a
    -DOCSTART- line first and a `# sent_id` comment before every sentence."""
    out = ["-DOCSTART-\tO", ""] if comments else []
    for k, (tokens, entities) in enumerate(sents):
        if comments:
            out.append(f"# sent_id = {k}")
        for tok, tag in zip(tokens, to_tags(entities, len(tokens), scheme)):
            out.append("\t".join([tok, "X", tag] if extra_column else [tok, tag]))
        out.append("")
    return "\n".join(out) + "\n"


def make_conll_dir(root: Path, scheme: str = "IOB2", n: dict[str, int] | None = None, seed: int = 0,
                   names: dict[str, str] | None = None, **kw) -> Path:
    """train.txt / dev.txt / test.txt in `scheme` (file names overridable by `names`, e.g. the BTC's)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files = names or {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
    for split, count in (n or {"train": 80, "dev": 16, "test": 20}).items():
        sents = [sentence(rng) for _ in range(count)]
        (root / files[split]).write_text(conll_text(sents, scheme, **kw), encoding="utf-8")
    return root


def read_gold(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(tokens, tags) per sentence of a two-column file without comments (an independent, naive reader)."""
    tokens, tags = [], []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines()]
        tokens.append([r[0] for r in rows])
        tags.append([r[-1] for r in rows])
    return tokens, tags
