"""Tag schemes for spans (IOB1, IOB2 a.k.a. BIO, BIOES a.k.a. IOBES): validation, conversion, spans, transitions.

A tag is ``O`` or ``P-TYPE`` with prefix ``P`` in B (begin), I (inside), E (end), S (single) and a non-empty TYPE
(everything after the first ``-``, as conlleval and seqeval read it). The schemes:

* **IOB2 / BIO**: every span starts with B-X and continues with I-X.
* **IOB1**: spans are I-X ...; B-X only starts an X span that directly follows another X span (CoNLL-2003's
  original files).
* **BIOES / IOBES**: a single-token span is S-X; longer ones are B-X, I-X ..., E-X.

**Spans** are read exactly as conlleval does (the same start/end rules, kept by seqeval's default mode), for any
scheme and for ill-formed sequences: a span ends before B-, O, a type change, or after E-/S-; it starts at B-,
S-, at a type change, and at I-/E- after O (``O I-PER`` is a PER span). E- and S- follow seqeval's extension
(plain conlleval treats E as IOE's end tag and has no S). Spans are half-open token ranges ``[start, end)``.

**Conversion** rewrites a sequence's spans in another scheme; for ill-formed input it keeps exactly the spans that
conlleval (and so the metrics) would read, so scoring a prediction before or after conversion gives the same
figures. A sequence is well-formed in a scheme exactly when conversion into that scheme leaves it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from seqlab.errors import ConfigError, DataError

__all__ = ["ALIASES", "SCHEMES", "Span", "Transitions", "Violation", "allowed_transitions", "convert", "decode",
           "entity_types", "find_violation", "labels_for", "scheme_name", "spans", "split_tag", "to_tags",
           "validate_sentences"]

SCHEMES = ("IOB1", "IOB2", "BIOES")
ALIASES = {"BIO": "IOB2", "IOBES": "BIOES"}
PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}


class Span(NamedTuple):
    """An entity: its type and token range ``[start, end)``."""

    type: str
    start: int
    end: int


class Violation(NamedTuple):
    """The first tag of a sequence that does not fit a scheme: its index, the tag, and why (one clause)."""

    index: int
    tag: str
    reason: str


class Transitions(NamedTuple):
    """Which label ids a scheme allows: ``pairs[i, j]`` label j right after label i, ``start[j]`` label j first
    in a sequence, ``end[i]`` label i last (bool tensors of shapes (C, C), (C,), (C,))."""

    pairs: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor


def scheme_name(name: str) -> str:
    """The canonical name (IOB1, IOB2 or BIOES) of a scheme name or alias, case-insensitive."""
    key = str(name).upper()
    key = ALIASES.get(key, key)
    if key not in SCHEMES:
        raise ConfigError(f"Unknown tag scheme {name!r}; use one of IOB1, IOB2 (or BIO), BIOES (or IOBES).")
    return key


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; ValueError for anything else."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"{tag!r} is not a span tag (O, or B-, I-, E-, S- followed by a type)")


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """conlleval's endOfChunk (with seqeval's E/S rules): does a span end at the token before ``cur``?"""
    if prev in "ES":
        return True
    if prev in "BI" and cur in "BSO":
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """conlleval's startOfChunk (with seqeval's E/S rules): does a span start at ``cur``?"""
    if cur in "BS":
        return True
    if prev in "OES" and cur in "IE":
        return True
    return cur != "O" and prev_type != cur_type


def spans(tags: Sequence[str]) -> list[Span]:
    """The spans of one sentence's tags, read as conlleval reads them (ValueError for a non-span tag)."""
    out: list[Span] = []
    prev, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_type = split_tag(tag)
        if _ends(prev, prev_type, cur, cur_type):
            out.append(Span(prev_type, begin, i))
        if _starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


def to_tags(entities: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Tags of ``length`` tokens holding non-overlapping ``entities`` (sorted or not), written in ``scheme``."""
    scheme = scheme_name(scheme)
    tags = ["O"] * length
    last_end, last_type = -1, ""
    for t, start, end in sorted(entities, key=lambda s: s.start):
        if scheme == "BIOES" and end - start == 1:
            tags[start] = f"S-{t}"
        else:
            tags[start:end] = [f"I-{t}"] * (end - start)
            if scheme == "IOB2" or scheme == "BIOES" or (start == last_end and t == last_type):
                tags[start] = f"B-{t}"
            if scheme == "BIOES":
                tags[end - 1] = f"E-{t}"
        last_end, last_type = end, t
    return tags


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """``tags`` (any scheme, well-formed or not) rewritten in ``scheme``, keeping the spans conlleval reads."""
    return to_tags(spans(tags), len(tags), scheme)


def decode(ids: Iterable[int], labels: Sequence[str], scheme: str) -> list[str]:
    """Model output ids -> tag names (``labels[id]``) -> tags in ``scheme`` (e.g. the scheme the data file uses)."""
    return convert([labels[int(i)] for i in ids], scheme)


def entity_types(tags: Iterable[str]) -> list[str]:
    """The sorted entity types used by ``tags`` (ValueError for a non-span tag)."""
    return sorted({split_tag(t)[1] for t in tags} - {""})


def labels_for(types: Iterable[str], scheme: str) -> list[str]:
    """Every tag of ``scheme`` over ``types``: ``O`` first, then per sorted type its prefixes (B, I[, E, S])."""
    prefixes = PREFIXES[scheme_name(scheme)]
    return ["O"] + [f"{p}-{t}" for t in sorted(set(types)) for p in prefixes]


def _allowed(prev: tuple[str, str] | None, cur: tuple[str, str] | None, scheme: str) -> bool:
    """May split tag ``cur`` follow ``prev`` in ``scheme``? ``prev=None``: sentence start; ``cur=None``: end."""
    p, pt = prev or ("O", "")
    c, ct = cur or ("O", "")
    if scheme == "IOB2":
        return c != "I" or (p in "BI" and pt == ct)
    if scheme == "IOB1":
        return c != "B" or (p in "BI" and pt == ct)
    inside = p in "BI"  # BIOES: after B-X or I-X only I-X or E-X may come, and they only there
    return inside == (c in "IE") and (not inside or pt == ct)


_HINTS = {
    "IOB2": "in IOB2 an I-X tag continues a span, so it must follow B-X or I-X",
    "IOB1": "in IOB1 a B-X tag only separates two adjacent X spans, so it must follow I-X or B-X "
            "(if the data is IOB2, declare IOB2)",
    "BIOES": "in BIOES a span is S-X or B-X (I-X ...) E-X",
}


def find_violation(tags: Sequence[str], scheme: str) -> Violation | None:
    """The first tag of ``tags`` that does not fit ``scheme`` (a prefix the scheme lacks, e.g. E-PER in IOB2, or
    a transition it forbids, e.g. O I-PER in IOB2), or None when the sequence is well-formed."""
    scheme = scheme_name(scheme)
    prev = None
    for i, tag in enumerate([*tags, None]):
        try:
            cur = None if tag is None else split_tag(tag)
        except ValueError as exc:
            return Violation(i, tag, str(exc))
        if cur is not None and cur[0] != "O" and cur[0] not in PREFIXES[scheme]:
            allowed = ", ".join(f"{p}-TYPE" for p in PREFIXES[scheme])
            return Violation(i, tag, f"{tag!r} is not an {scheme} tag ({scheme} uses O, {allowed})")
        if not _allowed(prev, cur, scheme):
            if tag is None:
                return Violation(i - 1, tags[i - 1], f"a sentence cannot end with {tags[i - 1]!r}: {_HINTS[scheme]}")
            where = f"come after {tags[i - 1]!r}" if prev else "start a sentence"
            return Violation(i, tag, f"{tag!r} cannot {where}: {_HINTS[scheme]}")
        prev = cur
    return None


def validate_sentences(sentences: Iterable[tuple], scheme: str, path: Path | str) -> None:
    """Raise :class:`DataError` naming ``path:line`` for the first tag that does not fit ``scheme``.

    ``sentences`` are ``(tokens, tags, lines)`` triples, as ``read_columns(..., with_lines=True)`` returns.
    """
    for _, tags, lines in sentences:
        bad = find_violation(tags, scheme)
        if bad is not None:
            raise DataError(f"{path}:{lines[bad.index]}: {bad.reason}; fix the tag, or set data.tag_scheme to "
                            f"the scheme the file uses.")


def allowed_transitions(labels: Sequence[str], scheme: str) -> Transitions:
    """The boolean transition constraints of ``scheme`` over ``labels`` (e.g. for a CRF's hard constraints)."""
    scheme = scheme_name(scheme)
    split = [split_tag(t) for t in labels]
    for tag, (p, _) in zip(labels, split):
        if p != "O" and p not in PREFIXES[scheme]:
            raise ValueError(f"label {tag!r} is not an {scheme} tag")
    pairs = torch.tensor([[_allowed(a, b, scheme) for b in split] for a in split], dtype=torch.bool)
    start = torch.tensor([_allowed(None, b, scheme) for b in split], dtype=torch.bool)
    end = torch.tensor([_allowed(a, None, scheme) for a in split], dtype=torch.bool)
    return Transitions(pairs, start, end)
