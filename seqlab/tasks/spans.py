"""Span tagging (named-entity recognition): per-token tags in a scheme (IOB1, IOB2, BIOES), scored as entities.

Two schemes are in play (both in the metadata's `task_options`): `data_scheme`, the one the data files use, and
`model_scheme`, the one the labels are in (`model.tag_scheme`: the datamodule converted every file into it). The
model's labels are every tag of the model scheme over the *training* entity types (`schemes.labels_for`).

**Scoring** is conlleval's: a predicted entity counts when a gold entity has the same type, start and end; micro and
per-type precision / recall / F1 (`seqlab.tasks.span_metrics.SpanF1`, equal to seqeval's default mode). Entities are
read from the model-scheme tag ids, which gives exactly the entities of the output in the file's scheme: conversion
between schemes keeps the spans conlleval reads (`schemes.convert`), ill-formed predictions included, so the figures
equal conlleval's on the predictions written in the data file's scheme. Token accuracy compares the tags written in
the file's scheme (conlleval's accuracy), so it does not depend on the model's scheme either.

**Entity types that training lacks** (in val/test files): the model cannot predict them. Their tokens carry
UNSEEN_LABEL (the span's first token UNSEEN_START), so token accuracy counts them as errors, as for POS tags, and
their spans are gold spans that no prediction can match: they count as missed (false negatives) in the micro
recall and F1; they have no per-type figures. The datamodule warns about them.

Prediction: `{"tokens", "tags", "entities"}`, tags in the data file's scheme and entities
`{"text", "type", "start", "end"}` with token offsets, `end` exclusive (`tokens[start:end]` is the entity).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from seqlab.data.vocab import UNSEEN_LABEL
from seqlab.errors import ConfigError
from seqlab.tasks import register_task, schemes
from seqlab.tasks.schemes import PREFIXES, Transitions, convert, decode, entity_types, scheme_name, spans, split_tag
from seqlab.tasks.tagging import Tagging

UNSEEN_START = UNSEEN_LABEL - 1  # gold label id of the first token of a span whose type training lacks
UNSEEN_TYPE = "(not in training)"  # the type the evaluator reads for those spans (never a prediction)


@register_task("spans")
class Spans(Tagging):
    """Tags (B, T) in the model's scheme; validation entity F1 selects checkpoints."""

    monitor: ClassVar[str] = "f1"

    def __init__(self, labels: Sequence[str], data_scheme: str = "IOB2", model_scheme: str = "IOB2"):
        super().__init__(labels)
        self.data_scheme, self.model_scheme = scheme_name(data_scheme), scheme_name(model_scheme)
        for tag in self.labels:
            try:
                prefix = split_tag(tag)[0]
            except ValueError as e:
                raise ConfigError(f"The spans task's labels must be span tags: {e}.") from None
            if prefix != "O" and prefix not in PREFIXES[self.model_scheme]:
                raise ConfigError(f"Label {tag!r} is not a tag of the model's scheme {self.model_scheme}.")
        self.types = entity_types(self.labels)

    # -- model -----------------------------------------------------------------------------------------------------
    def build_head(self, input_size: int, dropout: float, head: str = "linear", tag_scheme: str | None = None,
                   **options: Any) -> nn.Module:
        if tag_scheme is not None and scheme_name(tag_scheme) != self.model_scheme:
            raise ConfigError(f"model.tag_scheme={tag_scheme}, but the data's labels are in {self.model_scheme} (the "
                              f"datamodule's train_scheme); set both to the same scheme.")
        return super().build_head(input_size, dropout, head=head, **options)

    def transitions(self) -> Transitions:
        """What the model's scheme allows (the CRF's hard constraints)."""
        return schemes.allowed_transitions(self.labels, self.model_scheme)

    # -- evaluation ------------------------------------------------------------------------------------------------
    def evaluator(self, split: str) -> nn.Module:
        return SpanScores(self.labels, self.data_scheme)

    def update(self, evaluator: nn.Module, preds: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        evaluator.update(preds, batch["labels"], batch["lengths"])

    def metric_names(self, split: str) -> list[str]:
        if split == "train":
            return ["acc"]
        per_type = [f"f1_{t}" for t in self.types] if split == "test" else []
        return ["f1", "precision", "recall", *per_type, "acc"]

    def test_report(self, evaluator: nn.Module, experiment: Any) -> None:
        from seqlab.models import figures

        scores = evaluator.compute()
        types, counts = evaluator.counts()
        keep = [types.index(t) for t in self.types]
        tp, fp, fn = counts[:, keep]
        experiment.add_figure("test/per_type_f1", figures.per_type_f1_figure(self.types, tp, fp, fn))
        experiment.add_text("test/per_type_scores", figures.per_type_table(self.types, tp, fp, fn))
        errors = {k: int(scores[k]) for k in evaluator.errors}
        tp, fp, fn = (int(c) for c in counts.sum(1))
        experiment.add_text("test/span_errors", figures.span_error_table(errors, gold=tp + fn, predicted=tp + fp))

    # -- prediction ------------------------------------------------------------------------------------------------
    def record(self, tokens: list[str], pred: torch.Tensor, confidence: torch.Tensor) -> dict[str, Any]:
        tags = decode(pred[:len(tokens)].tolist(), self.labels, self.data_scheme)
        entities = [{"text": " ".join(tokens[s.start:s.end]), "type": s.type, "start": s.start, "end": s.end}
                    for s in spans(tags)]
        return {"tokens": tokens, "tags": tags, "entities": entities}

    def empty_record(self, tokens: list[str]) -> dict[str, Any]:
        return {"tokens": [], "tags": [], "entities": []}


class SpanScores(nn.Module):
    """Entity-level scores (SpanF1) and token accuracy of one split, both in the data file's scheme, DDP-reduced.

    `update(preds, labels, lengths)`: (B, T) label ids, (B,) lengths. Gold ids UNSEEN_START / UNSEEN_LABEL (a span
    of a type training lacks) are read as B-/I- tags of the type UNSEEN_TYPE, so those spans keep their exact
    boundaries and count as missed. Token accuracy compares the tags written in `data_scheme` (as conlleval's
    accuracy does on the file), so it does not depend on the scheme the model trains in. `compute()`: `f1`,
    `precision`, `recall` (micro), `f1_T`, `precision_T`, `recall_T` per training type T, the span error counts
    (`missed`, ...) and `acc`.
    """

    def __init__(self, labels: Sequence[str], data_scheme: str):
        super().__init__()
        from torchmetrics import MeanMetric

        from seqlab.tasks.span_metrics import ERRORS

        self.num_labels, self.errors, self.scheme = len(labels), ERRORS, data_scheme
        self.names = [*labels, f"B-{UNSEEN_TYPE}", f"I-{UNSEEN_TYPE}"]
        self.spans = _counting_span_f1()(self.names)
        self.tokens = MeanMetric()

    def update(self, preds: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> None:
        gold = torch.where(labels == UNSEEN_START, self.num_labels, labels)
        gold = torch.where(gold == UNSEEN_LABEL, self.num_labels + 1, gold)
        self.spans.update(preds, gold, lengths=lengths)
        correct = []
        for p, g, n in zip(preds.tolist(), gold.tolist(), lengths.tolist()):
            written = (convert([self.names[i] for i in ids[:n]], self.scheme) for ids in (p, g))
            correct += [a == b for a, b in zip(*written)]
        self.tokens.update(torch.tensor(correct, dtype=torch.float32, device=self.tokens.device))

    def compute(self) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in self.spans.compute().items() if not k.endswith(f"_{UNSEEN_TYPE}")}
        out["acc"] = self.tokens.compute()
        return out

    def reset(self) -> None:
        self.spans.reset()
        self.tokens.reset()

    def counts(self) -> tuple[list[str], torch.Tensor]:
        """(types, (3, types) tp / fp / fn) of the last `compute()` (all ranks), types as `SpanF1.types`: the
        training types and UNSEEN_TYPE, whose spans have only false negatives."""
        return self.spans.types, self.spans.counts


@functools.cache
def _counting_span_f1() -> type:
    """The class below, defined on first use: torchmetrics stays off the prediction import path."""
    from seqlab.tasks.span_metrics import SpanF1

    class CountingSpanF1(SpanF1):
        """SpanF1 that keeps the per-type counts its `compute()` saw: torchmetrics reduces the states across
        processes only during compute(), so the counts read afterwards would be this process's alone."""

        def compute(self) -> dict[str, torch.Tensor]:
            self.counts = torch.stack([self.tp, self.fp, self.fn]).cpu()
            return super().compute()

    return CountingSpanF1
