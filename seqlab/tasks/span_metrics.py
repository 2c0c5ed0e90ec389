"""Entity-level precision / recall / F1 as conlleval computes them, as a DDP-safe torchmetrics ``Metric``.

Spans are read from predicted and gold tags with :func:`seqlab.tasks.schemes.spans` (conlleval's rules, ill-formed
sequences included). A predicted span is correct when a gold span has the same start, end *and* type. Per type T:
``P = tp / (tp + fp)``, ``R = tp / (tp + fn)``, ``F1 = 2PR / (P + R)``; micro figures use the counts summed over
types; 0/0 is 0 (seqeval's default). These equal conlleval's and seqeval's default-mode scores.

**Span errors** (for a test-time table), per sentence; each wrong prediction lands in exactly one category:

* ``wrong_type``: a predicted span with the boundaries of a gold span but another type;
* ``wrong_boundary``: a predicted span that is not correct and not ``wrong_type`` but overlaps (shares at least
  one token with) a gold span, of the same type or not;
* ``spurious``: a predicted span that overlaps no gold span;
* ``missed``: a gold span that no predicted span overlaps.

So ``fp = wrong_type + wrong_boundary + spurious`` exactly, while ``fn = missed + (gold spans overlapped only by
wrong predictions)``: a gold span that a wrong prediction touches is counted once, as that prediction's error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from seqlab.tasks.schemes import PREFIXES, Span, entity_types, scheme_name, spans, split_tag

__all__ = ["ERRORS", "SpanF1", "classify_spans"]

ERRORS = ("missed", "spurious", "wrong_type", "wrong_boundary")


def classify_spans(pred: Sequence[Span], gold: Sequence[Span]) -> dict[str, list[Span]]:
    """Sort one sentence's spans: ``correct``, ``wrong_type``, ``wrong_boundary``, ``spurious`` (predicted spans)
    and ``missed`` (gold spans), as defined in the module docstring. Spans of one side must not overlap each other."""
    gold_set = set(gold)
    gold_bounds = {(s.start, s.end) for s in gold}
    size = max([s.end for s in (*pred, *gold)], default=0)
    covered_gold, covered_pred = [False] * size, [False] * size
    for s in gold:
        covered_gold[s.start:s.end] = [True] * (s.end - s.start)
    for s in pred:
        covered_pred[s.start:s.end] = [True] * (s.end - s.start)
    out: dict[str, list[Span]] = {"correct": [], "wrong_type": [], "wrong_boundary": [], "spurious": [], "missed": []}
    for s in pred:
        if s in gold_set:
            out["correct"].append(s)
        elif (s.start, s.end) in gold_bounds:
            out["wrong_type"].append(s)
        elif any(covered_gold[s.start:s.end]):
            out["wrong_boundary"].append(s)
        else:
            out["spurious"].append(s)
    out["missed"] = [s for s in gold if not any(covered_pred[s.start:s.end])]
    return out


def _lengths(target: torch.Tensor, lengths: torch.Tensor | None, mask: torch.Tensor | None) -> list[int]:
    """Per-sequence lengths from ``lengths`` (B,) or a left-aligned ``mask`` (B, T); all of T when neither."""
    if lengths is not None:
        return [int(n) for n in lengths.tolist()]
    if mask is None:
        return [target.size(1)] * target.size(0)
    n = mask.sum(dim=1)
    prefix = torch.arange(mask.size(1), device=mask.device)[None, :] < n[:, None]
    if not torch.equal(prefix, mask.bool()):
        raise ValueError("mask must be left-aligned (True for the first length steps of each sequence)")
    return n.tolist()


class SpanF1(Metric):
    """Entity-level micro and per-type precision / recall / F1 over batches of tag-id sequences.

    ``labels[i]`` is the name of tag id i (``O``, ``B-PER``, ...); with ``scheme`` given, every label must be a tag
    of that scheme. States are per-type ``tp``, ``fp``, ``fn`` counts and the ``errors`` counts (order of
    :data:`ERRORS`), all sum-reduced, so DDP aggregation is exact.

    ``update(preds, target, lengths=None, mask=None)``: preds, target (B, T) integer tag ids; the first
    ``lengths[b]`` steps of row b are real (or those where ``mask`` (B, T) is True; all steps when neither is given).
    ``compute()`` returns a flat dict of 0-dim tensors: ``precision``, ``recall``, ``f1`` (micro), ``precision_T``,
    ``recall_T``, ``f1_T`` for each type T, and the error counts ``missed``, ``spurious``, ``wrong_type``,
    ``wrong_boundary``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, labels: Sequence[str], scheme: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.labels = list(labels)
        for tag in self.labels:
            prefix = split_tag(tag)[0]
            if scheme is not None and prefix != "O" and prefix not in PREFIXES[scheme_name(scheme)]:
                raise ValueError(f"label {tag!r} is not an {scheme_name(scheme)} tag")
        self.types = entity_types(self.labels)
        self._index = {t: i for i, t in enumerate(self.types)}
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(len(self.types), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("errors", default=torch.zeros(len(ERRORS), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None,
               mask: torch.Tensor | None = None) -> None:
        if preds.shape != target.shape or preds.dim() != 2:
            raise ValueError(f"preds and target must both be (B, T), got {tuple(preds.shape)} and "
                             f"{tuple(target.shape)}")
        n_types = len(self.types)
        tp, fp, fn = [0] * n_types, [0] * n_types, [0] * n_types
        errors = dict.fromkeys(ERRORS, 0)
        names = self.labels
        for p, g, n in zip(preds.tolist(), target.tolist(), _lengths(target, lengths, mask)):
            pred, gold = spans([names[i] for i in p[:n]]), spans([names[i] for i in g[:n]])
            kinds = classify_spans(pred, gold)
            for s in kinds["correct"]:
                tp[self._index[s.type]] += 1
            for s in pred:
                fp[self._index[s.type]] += 1
            for s in gold:
                fn[self._index[s.type]] += 1
            for key in ERRORS:
                errors[key] += len(kinds[key])
        device = self.tp.device
        tp_t = torch.tensor(tp, dtype=torch.long, device=device)
        self.tp += tp_t
        self.fp += torch.tensor(fp, dtype=torch.long, device=device) - tp_t  # predicted - correct
        self.fn += torch.tensor(fn, dtype=torch.long, device=device) - tp_t  # gold - correct
        self.errors += torch.tensor([errors[k] for k in ERRORS], dtype=torch.long, device=device)

    def compute(self) -> dict[str, torch.Tensor]:
        out = dict(zip(("precision", "recall", "f1"), _prf(self.tp.sum(), self.fp.sum(), self.fn.sum())))
        per_type = _prf(self.tp, self.fp, self.fn)
        for i, t in enumerate(self.types):
            for name, value in zip(("precision", "recall", "f1"), per_type):
                out[f"{name}_{t}"] = value[i]
        out.update({k: self.errors[i] for i, k in enumerate(ERRORS)})
        return out


def _prf(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall, F1 from counts (any matching shapes), 0 where a denominator is 0."""
    tp, fp, fn = tp.float(), fp.float(), fn.float()  # float32, not double: MPS has no float64

    def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b > 0, a / b.clamp(min=1e-30), torch.zeros_like(a))

    p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return p, r, ratio(2 * p * r, p + r)
