"""Tests for the span F1 metric: equal to seqeval's default (conlleval) mode, sum-reducible, span error table."""

from __future__ import annotations

import random

import pytest
import torch
from seqeval.metrics import classification_report

from seqlab.tasks.schemes import SCHEMES, Span, labels_for, spans
from seqlab.tasks.span_metrics import ERRORS, SpanF1, classify_spans

TYPES = ["LOC", "ORG", "PER"]


def random_batches(labels, rng, n_batches=6, batch=7, max_len=15):
    """(preds, target, lengths) batches padded with -100, and the same sentences as tag-name lists. Predictions
    copy gold tags 60% of the time, so there are correct spans as well as every kind of error."""
    out, gold_names, pred_names = [], [], []
    for _ in range(n_batches):
        lengths = [rng.randint(1, max_len) for _ in range(batch)]
        target = torch.full((batch, max(lengths)), -100)
        preds = torch.full((batch, max(lengths)), -100)
        for b, n in enumerate(lengths):
            gold = [rng.randrange(len(labels)) if rng.random() < 0.5 else 0 for _ in range(n)]
            pred = [g if rng.random() < 0.6 else rng.randrange(len(labels)) for g in gold]
            target[b, :n], preds[b, :n] = torch.tensor(gold), torch.tensor(pred)
            gold_names.append([labels[i] for i in gold])
            pred_names.append([labels[i] for i in pred])
        out.append((preds, target, torch.tensor(lengths)))
    return out, gold_names, pred_names


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("by", ["lengths", "mask"])
def test_equals_seqeval_default_mode(scheme, by):
    """Random tag sequences (mostly ill-formed: I- after O, type changes, E- without B-): micro and per type."""
    labels = labels_for(TYPES, scheme)
    rng = random.Random(f"{scheme}{by}")
    batches, gold, pred = random_batches(labels, rng)
    metric = SpanF1(labels, scheme)
    for preds, target, lengths in batches:
        if by == "mask":
            mask = torch.arange(target.size(1))[None, :] < lengths[:, None]
            metric.update(preds, target, mask=mask)
        else:
            metric.update(preds, target, lengths)
    got = metric.compute()
    ref = classification_report(gold, pred, output_dict=True, zero_division=0)
    for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
        assert got[key].item() == pytest.approx(ref["micro avg"][name], abs=1e-6)
        for t in TYPES:
            assert got[f"{key}_{t}"].item() == pytest.approx(ref[t][name], abs=1e-6)
    assert 0.2 < ref["micro avg"]["f1-score"] < 0.9  # a mix of right and wrong spans, not a degenerate case
    assert int(metric.fn.sum()) + int(metric.tp.sum()) == ref["micro avg"]["support"]


def test_padding_is_ignored_and_no_lengths_means_full_rows():
    labels = labels_for(["PER"], "IOB2")  # O B-PER I-PER
    target = torch.tensor([[1, 2, 0, 1], [0, 1, 0, 0]])
    preds = torch.tensor([[1, 2, 0, 2], [0, 1, 2, 2]])  # past each length: wrong spans, which must not count
    metric = SpanF1(labels)
    metric.update(preds, target, torch.tensor([3, 2]))
    got = metric.compute()
    assert (got["precision"].item(), got["recall"].item(), got["f1"].item()) == (1.0, 1.0, 1.0)
    metric.reset()
    metric.update(preds, target)  # every step real: pred spans (0,2) (3,4) | (1,4); gold (0,2) (3,4) | (1,2)
    got = metric.compute()
    assert got["precision"].item() == pytest.approx(2 / 3) and got["recall"].item() == pytest.approx(2 / 3)
    assert int(got["wrong_boundary"]) == 1 and int(got["spurious"]) == int(got["missed"]) == 0


def test_zero_counts_give_zero_not_nan():
    metric = SpanF1(labels_for(["LOC", "PER"], "BIOES"))
    metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    got = metric.compute()
    assert all(got[k].item() == 0.0 for k in ("precision", "recall", "f1", "f1_LOC", "recall_PER"))


def test_states_sum_reduce_like_ddp():
    """Two "ranks" each see half the batches; summing their states (what DDP's reduction does) gives the result
    of one metric over everything."""
    labels = labels_for(TYPES, "IOB2")
    batches, _, _ = random_batches(labels, random.Random(1))
    whole, rank0, rank1 = SpanF1(labels), SpanF1(labels), SpanF1(labels)
    for i, batch in enumerate(batches):
        whole.update(*batch)
        (rank0 if i % 2 else rank1).update(*batch)
    assert all(rank0._reductions[k].__name__.endswith("sum") for k in ("tp", "fp", "fn", "errors"))
    rank0.merge_state(rank1)
    for name in ("tp", "fp", "fn", "errors"):
        assert torch.equal(getattr(rank0, name), getattr(whole, name))
    assert rank0.compute() == whole.compute()


def test_bad_inputs():
    with pytest.raises(ValueError, match="label 'E-PER' is not an IOB2 tag"):
        SpanF1(["O", "B-PER", "E-PER"], "BIO")
    with pytest.raises(ValueError, match="is not a span tag"):
        SpanF1(["O", "PER"])
    metric = SpanF1(["O", "B-PER", "I-PER"])
    with pytest.raises(ValueError, match="must be left-aligned"):
        metric.update(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long),
                      mask=torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match=r"preds and target must both be \(B, T\)"):
        metric.update(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))


def S(t, a, b):
    return Span(t, a, b)


def test_error_categories_example():
    gold = [S("PER", 0, 2), S("LOC", 3, 4), S("ORG", 5, 8), S("PER", 9, 10), S("LOC", 12, 13)]
    pred = [S("PER", 0, 2),  # correct
            S("ORG", 3, 4),  # same boundaries as gold LOC: wrong type
            S("ORG", 6, 8),  # overlaps gold ORG 5-8: wrong boundary, same type
            S("LOC", 9, 11),  # overlaps gold PER 9-10: wrong boundary, other type
            S("PER", 14, 15)]  # overlaps nothing: spurious; gold LOC 12-13 is touched by nothing: missed
    assert classify_spans(pred, gold) == {"correct": [pred[0]], "wrong_type": [pred[1]],
                                          "wrong_boundary": [pred[2], pred[3]], "spurious": [pred[4]],
                                          "missed": [gold[4]]}


def brute_force_errors(pred, gold):
    """The documented definitions, written the long way (token sets)."""
    toks = [set(range(s.start, s.end)) for s in gold]
    out = dict.fromkeys(ERRORS, 0)
    for p in pred:
        ptoks = set(range(p.start, p.end))
        if p in gold:
            continue
        if any((g.start, g.end) == (p.start, p.end) for g in gold):
            out["wrong_type"] += 1
        elif any(ptoks & t for t in toks):
            out["wrong_boundary"] += 1
        else:
            out["spurious"] += 1
    out["missed"] = sum(not any(set(range(p.start, p.end)) & t for p in pred) for t in toks)
    return out


def test_error_counts_match_definitions_and_fp_identity():
    labels = labels_for(TYPES, "BIOES")
    batches, gold, pred = random_batches(labels, random.Random(2))
    metric = SpanF1(labels)
    for batch in batches:
        metric.update(*batch)
    got = metric.compute()
    want = dict.fromkeys(ERRORS, 0)
    for g, p in zip(gold, pred):
        for k, v in brute_force_errors(spans(p), spans(g)).items():
            want[k] += v
    assert {k: int(got[k]) for k in ERRORS} == want
    assert min(want.values()) > 0
    assert int(metric.fp.sum()) == want["wrong_type"] + want["wrong_boundary"] + want["spurious"]
    assert int(metric.fn.sum()) >= want["missed"]
