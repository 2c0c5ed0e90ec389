"""`data=text`: classification from the user's own files (CSV, TSV, JSON Lines, JSON), and the corpus builder that
every text-classification datamodule (IMDB too) shares.

Label names come from the training file, in a stable order (numerically if every label is an integer, else
alphabetically). Rows whose text is empty (or has no token) are skipped and counted in the log. A label in the
validation or test file that the training file lacks is an error naming it, the file and the line.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from seqlab.data import cache
from seqlab.data.base import SequenceDataModule
from seqlab.data.cache import Ragged
from seqlab.data.textfiles import file_format, label_name, read_labelled_texts, sort_labels
from seqlab.data.tokenize import canonical, tokenize_many, tokenizer_version
from seqlab.data.vocab import PAD, UNK, UNK_INDEX
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)
CORPUS_VERSION = 2  # bump when what _build_corpus stores changes
FILE_SPLITS = ("train", "val", "test")


def classification_corpus(tokens: dict[str, list[list[str]]], labels: dict[str, list[int]],
                          names: list[str]) -> dict[str, Any]:
    """The cached-corpus dict of SequenceDataModule from tokenized splits: a full vocabulary sorted by training
    frequency (ties alphabetical) then the forms only in other splits, token ids (an empty text becomes one
    `<unk>`), labels as a tensor per split."""
    counts = Counter(t for doc in tokens["train"] for t in doc)
    itos = [PAD, UNK, *sorted(counts, key=lambda t: (-counts[t], t))]
    # Forms only in val/test follow (training count 0: never kept by min_freq/max_size, but a vocabulary extended
    # from pretrained vectors can keep them; see SequenceDataModule.extend_vocabulary).
    itos += sorted({t for split, docs in tokens.items() if split != "train" for doc in docs for t in doc} - set(counts))
    stoi = {t: i for i, t in enumerate(itos)}
    corpus: dict[str, Any] = {"itos": itos, "labels": list(names)}
    for split, docs in tokens.items():
        ids = Ragged.from_lists([[stoi.get(t, UNK_INDEX) for t in doc] or [UNK_INDEX] for doc in docs])
        corpus[split] = {"ids": ids.state(), "labels": torch.tensor(labels[split], dtype=torch.int64)}
    return corpus


def _per_split(value: Any, key: str) -> dict[str, Any]:
    """A field setting for every file: one value for all, or a mapping {train:, val:, test:} (missing: train's)."""
    if isinstance(value, dict):
        unknown = set(value) - set(FILE_SPLITS)
        if unknown or "train" not in value:
            raise ConfigError(f"data.{key} as a mapping needs a train entry and only train/val/test keys; got "
                              f"{', '.join(map(str, value))}.")
        return {s: value.get(s, value["train"]) for s in FILE_SPLITS}
    return dict.fromkeys(FILE_SPLITS, value)


class TextDataModule(SequenceDataModule):
    """Texts and labels from `data.train_file` (+ optional `data.val_file`, else a seeded stratified carve, and
    `data.test_file`). `text_field`: a column name or 0-based index, or a list of them whose values are joined (a
    title and a body); `label_field` likewise one column. Either may be a mapping {train: ..., val: ..., test: ...}
    when the files name their columns differently."""

    name = "text"
    default_task = "classification"

    def __init__(self, cache_dir: str | Path, train_file: str, val_file: str | None = None,
                 test_file: str | None = None, format: str | None = None, text_field: Any = "text",
                 label_field: Any = "label", header: bool = True, quotechar: str | None = '"',
                 tokenizer: str = "spacy", root: str | None = None, name: str | None = None,
                 label_names: dict | None = None, **kwargs: Any):
        super().__init__(root, cache_dir, **kwargs)
        self.name = name or self.name
        if label_names is not None and not isinstance(label_names, dict):
            raise ConfigError(f"data.label_names must be a mapping from the files' label values to names (e.g. "
                              f"{{0: negative, 1: positive}}) or null; got {label_names!r}.")
        self.label_names = {str(k): str(v) for k, v in (label_names or {}).items()}
        if not train_file:
            raise ConfigError("data.train_file is required for data=text; give the path of your training file.")
        self.files = {s: Path(f).expanduser() for s, f in
                      (("train", train_file), ("val", val_file), ("test", test_file)) if f}
        self.formats = {s: file_format(p, format) for s, p in self.files.items()}
        self.text_fields = {s: v if isinstance(v, (list, tuple)) else [v]
                            for s, v in _per_split(text_field, "text_field").items()}
        if any(not v for v in self.text_fields.values()):
            raise ConfigError("data.text_field must name at least one column.")
        self.label_fields = _per_split(label_field, "label_field")
        if not isinstance(header, bool):
            raise ConfigError(f"data.header must be true or false, got {header!r}.")
        if quotechar is not None and (not isinstance(quotechar, str) or len(quotechar) != 1):
            raise ConfigError(f"data.quotechar must be one character or null (no quoting), got {quotechar!r}.")
        self.header, self.quotechar = header, quotechar
        self.tokenizer_spec = canonical(tokenizer)

    def _corpus_spec(self) -> dict[str, Any]:
        for split, path in self.files.items():
            if not path.is_file():
                raise DataError(f"data.{split}_file {path} not found; give the path of an existing file.")
        return {"dataset": "text", "version": CORPUS_VERSION, "lowercase": self.lowercase,
                "tokenizer": tokenizer_version(self.tokenizer_spec), "header": self.header,
                "quotechar": self.quotechar, "formats": self.formats,
                "files": {s: cache.file_signature(p) for s, p in self.files.items()},
                "text_fields": {s: list(map(str, self.text_fields[s])) for s in self.files},
                "label_fields": {s: str(self.label_fields[s]) for s in self.files}, "label_names": self.label_names}

    def _read(self, split: str) -> tuple[list[str], list[str], list[str]]:
        """(texts, label names, row locations) of one file; rows with an empty text are skipped and counted."""
        path = self.files[split]
        texts, labels, where, empty = [], [], [], 0
        rows = read_labelled_texts(path, self.formats[split], self.text_fields[split], self.label_fields[split],
                                   self.header, self.quotechar)
        for row in rows:
            text = "\n".join(t for t in row.texts if t and t.strip())
            if not text.strip():
                empty += 1
                continue
            texts.append(text)
            labels.append(label_name(row.label, row.where))
            where.append(row.where)
        if empty:
            log.warning("%s: %d rows with an empty text skipped", path, empty)
        if not texts:
            raise DataError(f"{path} has no rows with a text; give a file with one labelled text per row.")
        return texts, labels, where

    def _build_corpus(self) -> dict[str, Any]:
        read = {s: self._read(s) for s in self.files}
        names = sort_labels(set(read["train"][1]))
        if len(names) < 2:
            raise DataError(f"{self.files['train']}: every row has the label {names[0]!r}; a classifier needs at "
                            "least two classes in the training file.")
        index = {n: i for i, n in enumerate(names)}
        for split in ("val", "test"):
            _, split_labels, split_where = read.get(split, ([], [], []))
            for label, where in zip(split_labels, split_where):
                if label not in index:
                    raise DataError(f"{where}: label {label!r} does not occur in the training file "
                                    f"{self.files['train']} (its labels: {', '.join(names)}); fix the label or "
                                    "remove the row.")
        tokens, labels, dropped = {}, {}, 0
        for split, (texts, names_, _) in read.items():
            docs = tokenize_many(texts, self.lowercase, self.tokenizer_workers, desc=f"tokenizing {split}",
                                 spec=self.tokenizer_spec)
            keep = [i for i, d in enumerate(docs) if d]
            dropped += len(docs) - len(keep)
            tokens[split] = [docs[i] for i in keep]
            labels[split] = [index[names_[i]] for i in keep]
        if dropped:
            log.warning("%d rows whose text has no token were skipped", dropped)
        if not tokens["train"]:
            raise DataError(f"{self.files['train']}: no row's text has a token; check data.text_field.")
        unknown = sorted(set(self.label_names) - set(names))
        if unknown:
            raise ConfigError(f"data.label_names names {', '.join(unknown)}, which are not labels of "
                              f"{self.files['train']} (its labels: {', '.join(names)}).")
        return classification_corpus(tokens, labels, [self.label_names.get(n, n) for n in names])
