"""`data=conll`: named-entity (span) data from CoNLL column files: one token per line, a blank line between sentences.

Files: `data.train_file`, `data.val_file` (optional: else a seeded carve of `data.val_fraction` sentences from the
training file), `data.test_file` (optional), read by `seqlab.data.columns.read_columns` (`data.sep`,
`data.token_column`, `data.tag_column`; `-DOCSTART-` and `# ` comment lines skipped; file:line errors).

Tag schemes: `data.tag_scheme` is the one the files use (IOB1, IOB2/BIO, BIOES/IOBES); every file is checked
against it (the first tag that does not fit is an error naming file:line). The model trains in `train_scheme`,
which the data config takes from `model.tag_scheme`: the tags are converted into it (keeping their entities), the
labels are every tag of that scheme over the training file's entity types, and the metadata carries both schemes, so
scores and predictions come out in the file's scheme (seqlab.tasks.spans).

Rules: no entity in the training file is a warning (the model can only predict O). Entity types of val/test files
that the training file lacks are a warning; their spans count as missed and their tokens as errors
(seqlab.tasks.spans). `data.merge_at_mentions` (off by default) joins a one-token `@` entity with the entity of the
same type right after it (`@ B-PER`, `name B-PER` -> one PER entity `@ name`), in every file, before training and
scoring; the Broad Twitter Corpus splits many @-mentions this way.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from seqlab.data import cache
from seqlab.data.base import SequenceDataModule
from seqlab.data.cache import Ragged
from seqlab.data.columns import read_columns
from seqlab.data.tagged import tagging_corpus
from seqlab.data.tokenize import canonical
from seqlab.data.vocab import UNSEEN_LABEL
from seqlab.errors import ConfigError, DataError
from seqlab.tasks.schemes import Span, convert, entity_types, labels_for, scheme_name, spans, to_tags
from seqlab.tasks.schemes import validate_sentences as validate
from seqlab.tasks.spans import UNSEEN_START, Spans

log = logging.getLogger(__name__)
CORPUS_VERSION = 1  # bump when what _build_corpus stores changes


def merge_at_mentions(tokens: list[str], tags: list[str], scheme: str) -> tuple[list[str], int]:
    """(tags with every one-token `@` entity joined to the same-type entity that directly follows it, rewritten in
    `scheme`; the number of joins)."""
    merged: list[Span] = []
    for s in spans(tags):
        prev = merged[-1] if merged else None
        if prev is not None and prev.end == s.start == prev.start + 1 and prev.type == s.type \
                and tokens[prev.start] == "@":
            merged[-1] = Span(s.type, prev.start, s.end)
        else:
            merged.append(s)
    joins = len(spans(tags)) - len(merged)
    return (to_tags(merged, len(tags), scheme) if joins else list(tags)), joins


def _scheme(value: Any, key: str) -> str:
    try:
        return scheme_name(value)
    except ConfigError:
        raise ConfigError(f"{key} must be IOB1, IOB2 (or BIO) or BIOES (or IOBES); got {value!r}.") from None


class ConllDataModule(SequenceDataModule):
    """Span-tagged sentences from CoNLL column files (see the module docstring)."""

    name = "conll"
    default_task = "spans"

    def __init__(self, cache_dir: str | Path, train_file: str, val_file: str | None = None,
                 test_file: str | None = None, sep: str = "auto", token_column: int = 0, tag_column: int = -1,
                 tag_scheme: str = "IOB2", train_scheme: str = "BIOES", merge_at_mentions: bool = False,
                 tokenizer: str = "spacy", root: str | None = None, name: str | None = None, **kwargs: Any):
        kwargs.setdefault("lowercase", False)  # case is a strong cue for names
        super().__init__(root, cache_dir, **kwargs)
        self.name = name or self.name
        if not (isinstance(self.task_class, type) and issubclass(self.task_class, Spans)):
            raise ConfigError(f"data=conll reads entity spans, so data.task must be spans (or a subclass of "
                              f"seqlab.tasks.spans.Spans); got {self.task_name}.")
        if not train_file:
            raise ConfigError("data.train_file is required for data=conll; give the path of your training file.")
        self.files = {s: Path(f).expanduser() for s, f in
                      (("train", train_file), ("val", val_file), ("test", test_file)) if f}
        for key, value in (("token_column", token_column), ("tag_column", tag_column)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"data.{key} must be a 0-based column index (-1: the last column), got {value!r}.")
        if not isinstance(merge_at_mentions, bool):
            raise ConfigError(f"data.merge_at_mentions must be true or false, got {merge_at_mentions!r}.")
        self.sep, self.token_column, self.tag_column = sep, token_column, tag_column
        self.data_scheme = _scheme(tag_scheme, "data.tag_scheme")
        self.model_scheme = _scheme(train_scheme, "model.tag_scheme")
        if self.given is not None and "model_scheme" in self.given.task_options:  # encode as the checkpoint was
            self.model_scheme = scheme_name(self.given.task_options["model_scheme"])
        self.merge_at_mentions = merge_at_mentions
        self.tokenizer_spec = canonical(tokenizer)

    def task_options(self) -> dict[str, Any]:
        return {"data_scheme": self.data_scheme, "model_scheme": self.model_scheme}

    def _corpus_spec(self) -> dict[str, Any]:
        for split, path in self.files.items():
            if not path.is_file():
                raise DataError(f"data.{split}_file {path} not found; give the path of an existing file.")
        return {"dataset": "conll", "version": CORPUS_VERSION, "lowercase": self.lowercase, "sep": self.sep,
                "token_column": self.token_column, "tag_column": self.tag_column, "tag_scheme": self.data_scheme,
                "train_scheme": self.model_scheme, "merge_at_mentions": self.merge_at_mentions,
                "files": {s: cache.file_signature(p) for s, p in self.files.items()}}

    def _read(self, split: str) -> list[tuple[list[str], list[str]]]:
        """(tokens, tags) sentences of one file, tags checked against data.tag_scheme (and merged if asked)."""
        path = self.files[split]
        sents = read_columns(path, sep=self.sep, token_column=self.token_column, tag_column=self.tag_column,
                             with_lines=True)
        validate(sents, self.data_scheme, path)
        out, joins = [], 0
        for tokens, tags, _ in sents:
            if self.merge_at_mentions:
                tags, n = merge_at_mentions(tokens, tags, self.data_scheme)
                joins += n
            out.append((tokens, tags))
        if self.merge_at_mentions:
            log.info("%s: %d '@' entities joined to the entity after them (data.merge_at_mentions)", path, joins)
        return out

    def _build_corpus(self) -> dict[str, Any]:
        read = {s: self._read(s) for s in self.files}
        types = set(entity_types(t for _, tags in read["train"] for t in tags))
        if not types:
            log.warning("%s has no entity (every tag is O): the model can only predict O; check data.tag_column.",
                        self.files["train"])
        unseen = Counter(s.type for split, sents in read.items() if split != "train" for _, tags in sents
                         for s in spans(tags) if s.type not in types)
        if unseen:
            log.warning("Entity types absent from the training file %s: %s; their spans count as missed and their "
                        "tokens as errors.", self.files["train"],
                        ", ".join(f"{t} ({n} span{'s' * (n != 1)})" for t, n in sorted(unseen.items())))
        labels = labels_for(types, self.model_scheme)
        # Tags in the model's scheme; spans of types training lacks become O here and get their codes below.
        converted = {split: [(tokens, convert([t if t == "O" or t[2:] in types else "O" for t in tags],
                                              self.model_scheme)) for tokens, tags in sents]
                     for split, sents in read.items()}
        corpus = tagging_corpus(converted, self.lowercase, labels=labels)
        for split, sents in read.items():
            _mark_unseen(corpus[split]["labels"], [tags for _, tags in sents], types)
        return corpus


def _mark_unseen(state: dict, tags: list[list[str]], types: set[str]) -> None:
    """In a corpus split's label ids (a Ragged state, changed in place): UNSEEN_START on the first token and
    UNSEEN_LABEL on the others of every span whose type is not in `types`."""
    labels = Ragged(**state)
    for offset, sentence in zip(labels.offsets.tolist(), tags):
        for s in spans(sentence):
            if s.type not in types:
                labels.values[offset + s.start] = UNSEEN_START
                labels.values[offset + s.start + 1:offset + s.end] = UNSEEN_LABEL
