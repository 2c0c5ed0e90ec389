"""Shared datamodule machinery: cached corpus -> train/val/test id streams -> bucketed, padded batches.

A subclass provides `_build_corpus()`: token ids over a *full* vocabulary sorted by training frequency (ids 0/1 =
`<pad>`/`<unk>`) plus labels, for splits "train", "test" and optionally "val". The corpus is cached on disk under a
fingerprint of its sources and tokenization settings. The kept vocabulary (`min_freq`, `max_size`, counted on the
training portion only, after the validation carve) is a re-mapping of those ids, so vocabulary settings, seeds and
validation fractions change in milliseconds without re-tokenizing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from seqlab.data import cache
from seqlab.data.cache import Ragged
from seqlab.data.collate import Collate
from seqlab.data.resumable import ResumableDataLoader
from seqlab.data.sampler import BucketBatchSampler
from seqlab.data.vocab import PAD, UNK, Vocab, select_by_counts
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)


class SequenceDataset(Dataset):
    """Items {"ids": (T,), "label": int or (T,) tags[, "forms": (T,)]}, truncated to `max_length` tokens.

    `forms` are ids in the full vocabulary (every word form of the corpus, rare and unseen ones included); tagging
    uses them for unseen-word flags and character features.
    """

    def __init__(self, ids: Ragged, labels: torch.Tensor | Ragged, max_length: int | None = None,
                 forms: Ragged | None = None):
        self.ids, self.labels, self.max_length, self.forms = ids, labels, max_length, forms

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = self.max_length
        item = {"ids": self.ids[i][:n],
                "label": self.labels[i][:n] if isinstance(self.labels, Ragged) else int(self.labels[i])}
        if self.forms is not None:
            item["forms"] = self.forms[i][:n]
        return item

    def lengths(self) -> torch.Tensor:
        n = self.ids.lengths()
        return n if self.max_length is None else n.clamp(max=self.max_length)


def _check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"data.{name} must be a positive integer{' or null' if allow_none else ''}, got {value!r}.")


class SequenceDataModule(pl.LightningDataModule):
    task = "classification"  # or "tagging"
    name = "base"

    def __init__(self, root: str | Path, cache_dir: str | Path, batch_size: int = 64, eval_batch_size: int = 256,
                 num_workers: int = 0, max_length: int | None = None, lowercase: bool = True,
                 max_size: int | None = None, min_freq: int = 1, val_fraction: float = 0.1, seed: int = 0,
                 tokenizer_workers: int | None = None, unk_replace: float = 0.0):
        super().__init__()
        for key in ("batch_size", "eval_batch_size"):
            _check_positive(key, locals()[key])
        _check_positive("max_length", max_length, allow_none=True)
        _check_positive("max_size", max_size, allow_none=True)
        _check_positive("min_freq", min_freq)
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.num_workers must be an integer >= 0, got {num_workers!r}.")
        if not 0.0 <= float(unk_replace) < 1.0:
            raise ConfigError(f"data.unk_replace must be in [0, 1), got {unk_replace!r}.")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}.")
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_length, self.lowercase, self.max_size, self.min_freq = max_length, lowercase, max_size, min_freq
        self.val_fraction, self.seed, self.tokenizer_workers = float(val_fraction), seed, tokenizer_workers
        self.unk_replace = float(unk_replace)
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.datasets: dict[str, SequenceDataset] = {}

    # -- subclass interface ---------------------------------------------------------------------------------------
    def _corpus_spec(self) -> dict[str, Any]:
        """Everything the cached corpus depends on (sources, preprocessing, and a "version" to bump whenever the
        corpus-building code changes what it stores), for its fingerprint."""
        raise NotImplementedError

    def _build_corpus(self) -> dict[str, Any]:
        """{"itos": full vocab, "labels": names, "train"/"test"[/"val"]: {"ids": Ragged.state(), "labels": ...}}."""
        raise NotImplementedError

    # -- corpus cache ------------------------------------------------------------------------------------------------
    def cache_path(self) -> Path:
        return self.cache_dir / f"{self.name}-{cache.fingerprint(self._corpus_spec())}.pt"

    def prepare_data(self) -> None:
        """Build the cached corpus if needed (Lightning runs this on one process per node)."""
        if not self.cache_path().is_file():
            self._load_corpus()

    def _load_corpus(self) -> dict[str, Any]:
        path = self.cache_path()
        t0 = time.perf_counter()
        corpus = cache.load(path)
        if corpus is None:
            log.info("Preparing %s (cache miss: %s)", self.name, path)
            corpus = self._build_corpus()
            cache.atomic_save(corpus, path)
            log.info("Prepared %s in %.1f s, cached at %s", self.name, time.perf_counter() - t0, path)
        else:
            log.info("Loaded cached %s from %s in %.2f s", self.name, path, time.perf_counter() - t0)
        return corpus

    # -- splits and vocabulary -----------------------------------------------------------------------------------------
    def _carve_val(self, labels: torch.Tensor | Ragged, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic (seeded) train/val index split, stratified by label for classification."""
        g = torch.Generator().manual_seed(self.seed)
        groups = [torch.nonzero(labels == c).flatten() for c in labels.unique()] \
            if isinstance(labels, torch.Tensor) else [torch.arange(n)]
        val = []
        for idx in groups:
            idx = idx[torch.randperm(len(idx), generator=g)]
            val.append(idx[:round(len(idx) * self.val_fraction)])
        val_idx = torch.sort(torch.cat(val)).values
        mask = torch.ones(n, dtype=torch.bool)
        mask[val_idx] = False
        return torch.nonzero(mask).flatten(), val_idx

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        corpus = self._load_corpus()
        self.labels = list(corpus["labels"])

        def split(name):
            ids = Ragged(**corpus[name]["ids"])
            lab = corpus[name]["labels"]
            return ids, (Ragged(**lab) if isinstance(lab, dict) else lab)

        train_ids, train_labels = split("train")
        if "val" in corpus:
            val_ids, val_labels = split("val")
        else:
            tr, va = self._carve_val(train_labels, len(train_ids))
            val_ids, val_labels = train_ids.subset(va), _take(train_labels, va)
            train_ids, train_labels = train_ids.subset(tr), _take(train_labels, tr)
        test_ids, test_labels = split("test")

        full_itos = corpus["itos"]
        counts = torch.bincount(train_ids.values.long(), minlength=len(full_itos))
        kept = select_by_counts(counts, self.max_size, self.min_freq)
        table = torch.full((len(full_itos),), Vocab.unk_index, dtype=torch.int64)
        table[0] = Vocab.pad_index
        table[kept] = torch.arange(2, 2 + len(kept))
        self.vocab = Vocab([PAD, UNK, *(full_itos[i] for i in kept.tolist())])
        self.rare = torch.zeros(len(self.vocab), dtype=torch.bool)  # kept ids seen once in training
        self.rare[2:] = counts[kept] == 1
        self.train_counts = counts  # full-vocab training counts (for OOV statistics)
        self.full_itos = full_itos
        tagging = self.task == "tagging"
        self.never_seen = counts == 0  # full id -> True if the word never occurs in the training portion
        if tagging:
            self.chars, self.char_table = char_table(full_itos, counts, self.max_word_length)
        for name, ids, lab in (("train", train_ids, train_labels), ("val", val_ids, val_labels),
                               ("test", test_ids, test_labels)):
            self.datasets[name] = SequenceDataset(ids.map_values(table), lab, self.max_length,
                                                  forms=ids if tagging else None)
        log.info("%s: vocab %d, train %d, val %d, test %d", self.name, len(self.vocab),
                 *(len(self.datasets[s]) for s in ("train", "val", "test")))

    @property
    def metadata(self) -> dict[str, Any]:
        """What the model needs to build itself; nothing here is typed into a yaml."""
        if self.vocab is None:
            self.setup()
        meta = {"task": self.task, "vocab_size": len(self.vocab), "pad_index": self.vocab.pad_index,
                "labels": list(self.labels)}
        if self.task == "tagging":
            meta["num_chars"] = len(self.chars)
        return meta

    def inference_info(self) -> dict[str, Any]:
        """What a checkpoint needs to process raw text without this datamodule: vocab, labels, preprocessing."""
        if self.vocab is None:
            self.setup()
        return {"dataset": self.name, "task": self.task, "vocab": list(self.vocab.itos), "labels": list(self.labels),
                "lowercase": self.lowercase, "max_length": self.max_length, "tokenizer": self.tokenizer_name,
                "chars": list(self.chars) if self.task == "tagging" else None, "max_word_length": self.max_word_length}

    tokenizer_name = "spacy-blank-en"  # how raw text becomes tokens at prediction time
    max_word_length = 20  # characters per word seen by a character encoder (tagging)

    def word_counts(self) -> dict[str, int]:
        """Training counts of every word form of the training portion, kept in the vocabulary or not."""
        nz = torch.nonzero(self.train_counts).flatten().tolist()
        return {self.full_itos[i]: int(self.train_counts[i]) for i in nz if i > 1}

    # -- loaders -----------------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[split]
        sampler = BucketBatchSampler(ds.lengths(), self.batch_size if shuffle else self.eval_batch_size,
                                     shuffle=shuffle, seed=self.seed)
        tagging = self.task == "tagging"
        collate = Collate(self.vocab.pad_index, tagging, never_seen=self.never_seen if tagging else None,
                          char_table=self.char_table if tagging else None,
                          unk_replace=self.unk_replace if shuffle else 0.0, rare=self.rare)
        return ResumableDataLoader(ds, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=collate,
                                   persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def char_table(full_itos: list[str], counts: torch.Tensor, max_len: int) -> tuple[list[str], torch.Tensor]:
    """Character vocabulary of the training words (`<pad>` 0, `<unk>` 1) and a (V_full, max_len) id table of
    every word form's first `max_len` characters (0-padded), so unseen words still get character features."""
    seen = Counter()
    for i in torch.nonzero(counts).flatten().tolist():
        seen.update(full_itos[i])
    chars = [PAD, UNK, *sorted(seen, key=lambda c: (-seen[c], c))]
    cid = {c: i for i, c in enumerate(chars)}
    table = torch.zeros(len(full_itos), max_len, dtype=torch.int64)
    for i, w in enumerate(full_itos[2:], start=2):
        ids = [cid.get(c, 1) for c in w[:max_len]]
        table[i, :len(ids)] = torch.tensor(ids)
    table[1, 0] = 1  # <unk> as a one-character unknown word
    return chars, table


def _take(labels: torch.Tensor | Ragged, index: torch.Tensor):
    return labels.subset(index) if isinstance(labels, Ragged) else labels[index]
