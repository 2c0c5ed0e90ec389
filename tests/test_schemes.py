"""Tests for tag schemes: conlleval spans (against seqeval), conversion, validation, transition matrices."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from seqlab.data.columns import read_columns
from seqlab.errors import ConfigError, DataError
from seqlab.tasks.schemes import (
    SCHEMES,
    Span,
    allowed_transitions,
    convert,
    decode,
    entity_types,
    find_violation,
    labels_for,
    scheme_name,
    spans,
    split_tag,
    to_tags,
    validate_sentences,
)

ALL_TAGS = labels_for(["LOC", "PER"], "BIOES")  # every prefix over two types: any scheme's sequences, and more


def test_scheme_names():
    assert [scheme_name(n) for n in ("iob1", "IOB2", "bio", "BIOES", "iobes")] == [
        "IOB1", "IOB2", "IOB2", "BIOES", "BIOES"]
    with pytest.raises(ConfigError, match="Unknown tag scheme 'BILOU'; use one of IOB1, IOB2 \\(or BIO\\), BIOES"):
        scheme_name("BILOU")


def test_split_tag():
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("O") == ("O", "")
    assert split_tag("I-B-X") == ("I", "B-X")  # the type is everything after the first '-', as in conlleval
    for bad in ("PER", "B", "B-", "b-PER", "X-PER", "BPER", ""):
        with pytest.raises(ValueError, match="is not a span tag"):
            split_tag(bad)


@pytest.mark.parametrize(("tags", "want"), [
    ("O O", []),
    ("B-PER I-PER O", [("PER", 0, 2)]),
    ("O I-PER I-PER", [("PER", 1, 3)]),  # I- after O starts a span
    ("B-PER I-LOC I-LOC", [("PER", 0, 1), ("LOC", 1, 3)]),  # a type change inside a span starts a new one
    ("I-PER B-PER", [("PER", 0, 1), ("PER", 1, 2)]),  # IOB1 adjacent spans
    ("B-PER B-PER", [("PER", 0, 1), ("PER", 1, 2)]),
    ("S-PER B-LOC I-LOC E-LOC", [("PER", 0, 1), ("LOC", 1, 4)]),
    ("B-PER E-PER E-PER", [("PER", 0, 2), ("PER", 2, 3)]),  # E always ends a span
    ("B-PER", [("PER", 0, 1)]),  # the sentence end closes a span
    ("E-PER I-PER", [("PER", 0, 1), ("PER", 1, 2)]),
    ("B-PER S-PER I-PER", [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3)]),
])
def test_spans_examples(tags, want):
    assert spans(tags.split()) == [Span(*s) for s in want]


def test_spans_equal_seqeval_on_random_sequences():
    rng = random.Random(0)
    for _ in range(5000):
        tags = [rng.choice(ALL_TAGS) for _ in range(rng.randint(0, 10))]
        assert spans(tags) == [Span(t, s, e + 1) for t, s, e in get_entities(tags)], tags


def all_sequences(max_len: int = 4):
    for n in range(max_len + 1):
        yield from (list(seq) for seq in itertools.product(ALL_TAGS, repeat=n))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_well_formed_iff_conversion_is_identity_iff_matrix_allows(scheme):
    """Exhaustively (two types, lengths 0-4): three independent readings of "well-formed" agree."""
    labels = labels_for(["LOC", "PER"], scheme)
    index = {t: i for i, t in enumerate(labels)}
    pairs, start, end = allowed_transitions(labels, scheme)
    n_valid = 0
    for seq in all_sequences():
        valid = find_violation(seq, scheme) is None
        assert valid == (convert(seq, scheme) == seq), seq
        ids = [index.get(t) for t in seq]
        if None in ids:  # a tag with a prefix this scheme does not have
            assert not valid
            continue
        by_matrix = not ids or (bool(start[ids[0]]) and bool(end[ids[-1]])
                                and all(bool(pairs[a, b]) for a, b in itertools.pairwise(ids)))
        assert valid == by_matrix, seq
        n_valid += valid
    assert n_valid > 100


def test_conversion_keeps_conlleval_spans_and_round_trips():
    for seq in all_sequences(3):
        for scheme in SCHEMES:
            out = convert(seq, scheme)
            assert spans(out) == spans(seq) and len(out) == len(seq)
            assert find_violation(out, scheme) is None
            for other in SCHEMES:  # well-formed in one scheme -> another -> back is the identity
                assert convert(convert(out, other), scheme) == out


def test_conversion_examples():
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]
    assert convert(iob2, "IOB1") == ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O"]
    assert convert(iob2, "BIOES") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O"]
    assert convert(["O", "I-PER", "I-LOC", "E-LOC"], "IOB2") == ["O", "B-PER", "B-LOC", "I-LOC"]
    assert to_tags([Span("LOC", 3, 4), Span("PER", 0, 2)], 5, "BIO") == ["B-PER", "I-PER", "O", "B-LOC", "O"]


def test_decode_model_ids_to_the_file_scheme():
    labels = labels_for(["PER"], "BIOES")  # O B-PER I-PER E-PER S-PER
    assert labels == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert decode(torch.tensor([4, 0, 1, 2, 3]), labels, "IOB2") == ["B-PER", "O", "B-PER", "I-PER", "I-PER"]
    assert decode([2, 0], labels, "IOB1") == ["I-PER", "O"]  # an ill-formed prediction, read as conlleval does


def test_labels_and_types():
    assert labels_for(["PER", "LOC", "PER"], "IOB2") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert labels_for([], "IOB1") == ["O"]
    assert entity_types(["O", "I-PER", "B-LOC", "S-PER"]) == ["LOC", "PER"]


@pytest.mark.parametrize(("tags", "scheme", "index", "reason"), [
    ("O E-PER", "IOB2", 1, "'E-PER' is not an IOB2 tag (IOB2 uses O, B-TYPE, I-TYPE)"),
    ("B-PER S-LOC", "BIO", 1, "'S-LOC' is not an IOB2 tag"),
    ("B-PER I-PER O I-PER", "IOB2", 3, "'I-PER' cannot come after 'O': in IOB2 an I-X tag continues a span"),
    ("B-PER I-LOC", "IOB2", 1, "'I-LOC' cannot come after 'B-PER'"),
    ("I-PER", "IOB2", 0, "'I-PER' cannot start a sentence"),
    ("O B-PER", "IOB1", 1, "'B-PER' cannot come after 'O': in IOB1 a B-X tag only separates two adjacent X spans"),
    ("O B-PER I-PER", "BIOES", 2, "a sentence cannot end with 'I-PER': in BIOES a span is S-X or B-X"),
    ("B-PER O", "BIOES", 1, "'O' cannot come after 'B-PER'"),
    ("S-PER E-PER", "IOBES", 1, "'E-PER' cannot come after 'S-PER'"),
    ("O PER", "IOB2", 1, "'PER' is not a span tag"),
])
def test_violations(tags, scheme, index, reason):
    bad = find_violation(tags.split(), scheme)
    assert bad is not None and bad.index == index and bad.tag == tags.split()[index]
    assert bad.reason.startswith(reason)


def test_validate_sentences_names_file_and_line(tmp_path):
    p = tmp_path / "train.conll"
    p.write_text("# c\nJohn\tB-PER\nSmith\tE-PER\n\nin\tO\nParis\tS-LOC\n\nin\tO\nRome\tI-LOC\n", "utf-8")
    sents = read_columns(p, with_lines=True)
    validate_sentences(sents[:2], "BIOES", p)
    with pytest.raises(DataError) as exc:
        validate_sentences(sents, "IOB2", p)
    assert str(exc.value) == (f"{p}:3: 'E-PER' is not an IOB2 tag (IOB2 uses O, B-TYPE, I-TYPE); fix the tag, or "
                              "set data.tag_scheme to the scheme the file uses.")
    with pytest.raises(DataError, match=r"train.conll:9: 'I-LOC' cannot come after 'O': in BIOES"):
        validate_sentences(sents, "BIOES", p)


def test_transition_matrix_iob2():
    pairs, start, end = allowed_transitions(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "IOB2")
    assert pairs.tolist() == [[True, True, False, True, False],
                              [True, True, True, True, False],
                              [True, True, True, True, False],
                              [True, True, False, True, True],
                              [True, True, False, True, True]]
    assert start.tolist() == [True, True, False, True, False] and end.all()
    with pytest.raises(ValueError, match="label 'E-PER' is not an IOB2 tag"):
        allowed_transitions(["O", "E-PER"], "IOB2")
