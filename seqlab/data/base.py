"""Shared datamodule machinery: cached corpus -> train/val/test id streams -> bucketed, padded batches.

A subclass provides `_corpus_spec()` (what the cache depends on) and `_build_corpus()`: token ids over a *full*
vocabulary sorted by training frequency (ids 0/1 = `<pad>`/`<unk>`) plus labels, for splits "train" and optionally
"val" and "test". The corpus is cached on disk under a fingerprint of its sources and settings. The kept vocabulary
(`min_freq`, `max_size`, counted on the training portion only, after the validation carve) is a re-mapping of those
ids, so vocabulary settings, seeds and validation fractions change in milliseconds without re-tokenizing.

What differs between tasks (how labels batch, how the validation split is carved, whether tokens carry word
features) is asked of the task class (`data.task`, else the datamodule's `default_task`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from seqlab.arguments import check_positive_int
from seqlab.data import cache
from seqlab.data.cache import Ragged
from seqlab.data.chars import char_vocabulary, encode_chars
from seqlab.data.collate import Collate
from seqlab.data.resumable import ResumableDataLoader
from seqlab.data.sampler import BucketBatchSampler
from seqlab.data.vocab import PAD, PAD_INDEX, UNK, UNK_INDEX, UNSEEN_LABEL, Vocab, select_by_counts
from seqlab.errors import ConfigError, DataError
from seqlab.metadata import Metadata
from seqlab.tasks import get_task

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


class SequenceDataset(Dataset):
    """Items {"ids": (T,), "label": int or (T,) tags[, "forms": (T,)]}, truncated to `max_length` tokens.

    `forms` are ids in the full vocabulary (every word form of the corpus, rare and unseen ones included); per-token
    tasks use them for unseen-word flags and character features.
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


class SequenceDataModule(pl.LightningDataModule):
    default_task = "classification"
    name = "base"
    tokenizer_spec = "spacy:en"  # how raw text becomes tokens at prediction time (subclasses may set their own)
    max_word_length = 20  # characters per word seen by a character encoder

    def __init__(self, root: str | Path | None, cache_dir: str | Path, batch_size: int = 64,
                 eval_batch_size: int = 256, num_workers: int = 0, max_length: int | None = None,
                 lowercase: bool = True, max_size: int | None = None, min_freq: int = 1, val_fraction: float = 0.1,
                 seed: int = 0, tokenizer_workers: int | None = None, unk_replace: float = 0.0,
                 task: str | None = None, metadata: Metadata | None = None):
        super().__init__()
        for key in ("batch_size", "eval_batch_size"):
            check_positive_int(f"data.{key}", locals()[key])
        check_positive_int("data.max_length", max_length, allow_none=True)
        check_positive_int("data.max_size", max_size, allow_none=True)
        check_positive_int("data.min_freq", min_freq)
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.num_workers must be an integer >= 0, got {num_workers!r}.")
        if not 0.0 <= float(unk_replace) < 1.0:
            raise ConfigError(f"data.unk_replace must be in [0, 1), got {unk_replace!r}.")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}.")
        self.root = None if root is None else Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_length, self.lowercase, self.max_size, self.min_freq = max_length, lowercase, max_size, min_freq
        self.val_fraction, self.seed, self.tokenizer_workers = float(val_fraction), seed, tokenizer_workers
        self.unk_replace = float(unk_replace)
        self.task_name = task or self.default_task
        self.task_class = get_task(self.task_name)
        self.given = metadata  # encode with this vocabulary and these labels (a checkpoint's) instead of building
        self.extra_words: set[str] = set()  # word forms kept beyond the training vocabulary (extend_vocabulary)
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.chars: list[str] | None = None
        self.datasets: dict[str, SequenceDataset] = {}
        self.carved_from: int | None = None  # training examples the validation split was carved from, if it was

    # -- subclass interface ---------------------------------------------------------------------------------------
    def _corpus_spec(self) -> dict[str, Any]:
        """Everything the cached corpus depends on (sources, preprocessing, and a "version" to bump whenever the
        corpus-building code changes what it stores), for its fingerprint."""
        raise NotImplementedError

    def _build_corpus(self) -> dict[str, Any]:
        """{"itos": full vocab, "labels": names, "train"[/"val"/"test"]: {"ids": Ragged.state(), "labels": ...}};
        labels are ids into "labels" (UNSEEN_LABEL for a label that training lacks), a tensor (N,) per sequence
        or a Ragged state per token."""
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
        """Deterministic (seeded) train/val index split; the task says which groups to sample evenly from."""
        g = torch.Generator().manual_seed(self.seed)
        val = []
        for idx in self.task_class.carve_groups(labels, n):
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

        def split(name):
            lab = corpus[name]["labels"]
            return Ragged(**corpus[name]["ids"]), (Ragged(**lab) if isinstance(lab, dict) else lab)

        parts = {name: split(name) for name in SPLITS if name in corpus}
        if "val" not in parts:
            (ids, lab), n = parts["train"], len(parts["train"][0])
            tr, va = self._carve_val(lab, n)
            self.carved_from = n
            parts["val"], parts["train"] = (ids.subset(va), _take(lab, va)), (ids.subset(tr), _take(lab, tr))

        full_itos = corpus["itos"]
        counts = torch.bincount(parts["train"][0].values.long(), minlength=len(full_itos))
        table = self._vocabulary(full_itos, counts)
        self.labels, relabel = self._label_names(list(corpus["labels"]))
        kept_counts = torch.zeros(len(self.vocab), dtype=torch.long).index_add_(0, table, counts)
        self.rare = kept_counts == 1  # kept ids seen once in training (data.unk_replace)
        self.rare[:2] = False
        self.train_counts, self.full_itos = counts, full_itos  # full-vocab training counts (OOV statistics, vectors)
        per_token = self.task_class.per_token
        self.never_seen = counts == 0  # full id -> True if the word never occurs in the training portion
        if per_token:
            trained = [(full_itos[i], int(counts[i])) for i in torch.nonzero(counts).flatten().tolist() if i > 1]
            self.chars = self.given.chars if self.given is not None and self.given.chars else char_vocabulary(trained)
            self.char_table = encode_chars(full_itos, self.chars, self.max_word_length)
        for name, (ids, lab) in parts.items():
            lab = _relabel(lab, relabel) if relabel is not None else lab
            self.datasets[name] = SequenceDataset(ids.map_values(table), lab, self.max_length,
                                                  forms=ids if per_token else None)
        log.info("%s: vocab %d, %s", self.name, len(self.vocab),
                 ", ".join(f"{s} {len(self.datasets[s])}" for s in SPLITS if s in self.datasets))

    def _vocabulary(self, full_itos: list[str], counts: torch.Tensor) -> torch.Tensor:
        """Sets self.vocab (kept tokens) and returns the full id -> kept id table (`<unk>` for the rest)."""
        table = torch.full((len(full_itos),), UNK_INDEX, dtype=torch.int64)
        table[PAD_INDEX] = PAD_INDEX
        if self.given is not None:  # a checkpoint's vocabulary: words it lacks become <unk>
            stoi = {t: i for i, t in enumerate(self.given.vocab)}
            table[2:] = torch.tensor([stoi.get(t, UNK_INDEX) for t in full_itos[2:]], dtype=torch.int64)
            self.vocab = Vocab(self.given.vocab)
            missing = len(set(self.given.vocab[2:]) - set(full_itos))
            if missing or self.given.vocab != self._built_vocab(full_itos, counts).itos:
                log.warning("This data builds another vocabulary than the checkpoint's; it is encoded with the "
                            "checkpoint's (%d of its %d words do not occur in this data), so metrics can differ from "
                            "the training run's.", missing, len(self.given.vocab))
            return table
        kept = self._kept_ids(full_itos, counts)
        self.vocab = Vocab([PAD, UNK, *(full_itos[i] for i in kept.tolist())])
        table[kept] = torch.arange(2, 2 + len(kept))
        return table

    def _kept_ids(self, full_itos: list[str], counts: torch.Tensor) -> torch.Tensor:
        """Full ids kept in the vocabulary: the training words by `min_freq` / `max_size`, then (after
        `extend_vocabulary`) the other word forms of the data that are in the given word set, in full-id order."""
        kept = select_by_counts(counts, self.max_size, self.min_freq)
        if self.extra_words:
            taken = torch.zeros(len(full_itos), dtype=torch.bool)
            taken[kept] = True
            extra = [i for i in range(2, len(full_itos)) if not taken[i] and full_itos[i] in self.extra_words]
            kept = torch.cat([kept, torch.tensor(extra, dtype=torch.int64)])
        return kept

    def _built_vocab(self, full_itos: list[str], counts: torch.Tensor) -> Vocab:
        return Vocab([PAD, UNK, *(full_itos[i] for i in self._kept_ids(full_itos, counts).tolist())])

    def corpus_words(self) -> list[str]:
        """Every word form of the corpus (all splits; after `setup`), kept in the vocabulary or not."""
        if self.vocab is None:
            self.setup()
        return list(self.full_itos[2:])

    def extend_vocabulary(self, words: set[str]) -> int:
        """Keep also the corpus's word forms that are in `words` (e.g. those pretrained vectors know), though
        training did not keep them (rare, or only in validation / test data); returns how many were added.
        Rows of words absent from the training portion never receive a gradient, so they keep their initial
        (pretrained) values; rare training words train like the others."""
        if self.given is not None:
            raise ConfigError("A datamodule that encodes with a checkpoint's vocabulary cannot extend it.")
        before = len(self.vocab) if self.vocab is not None else None
        self.extra_words = set(words)
        self.datasets, self.vocab = {}, None
        self.setup()
        return len(self.vocab) - (before or len(self.vocab))

    def _label_names(self, names: list[str]) -> tuple[list[str], torch.Tensor | None]:
        """(label names, corpus label id -> model label id table or None). A checkpoint's labels keep their ids;
        labels of the data that the checkpoint lacks count as errors (UNSEEN_LABEL)."""
        if self.given is None or self.given.labels == names:
            return names, None
        index = {n: i for i, n in enumerate(self.given.labels)}
        extra = [n for n in names if n not in index]
        if extra:
            log.warning("Labels of this data that the checkpoint lacks count as errors: %s", ", ".join(extra))
        return list(self.given.labels), torch.tensor([index.get(n, UNSEEN_LABEL) for n in names], dtype=torch.int64)

    @property
    def metadata(self) -> Metadata:
        """What the model needs to build itself, the checkpoint stores and prediction reads back."""
        if self.vocab is None:
            self.setup()
        return Metadata(task=self.task_name, vocab=list(self.vocab.itos), labels=list(self.labels),
                        tokenizer=self.tokenizer_spec, lowercase=self.lowercase, max_length=self.max_length,
                        chars=None if self.chars is None else list(self.chars), max_word_length=self.max_word_length,
                        dataset=self.name, task_options=self.task_options())

    def task_options(self) -> dict[str, Any]:
        """Settings the task needs from the data (e.g. a tag scheme); none by default."""
        return {}

    def word_counts(self) -> dict[str, int]:
        """Training counts of every word form of the training portion, kept in the vocabulary or not."""
        nz = torch.nonzero(self.train_counts).flatten().tolist()
        return {self.full_itos[i]: int(self.train_counts[i]) for i in nz if i > 1}

    def has_split(self, split: str) -> bool:
        if not self.datasets:
            self.setup()
        return split in self.datasets

    # -- loaders -----------------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise DataError(f"The {self.name} data has no {split} split; give data.{split}_file.")
        ds = self.datasets[split]
        if not len(ds):  # the sampler, and Lightning, would fail with a traceback
            if split == "val" and self.carved_from is not None:
                raise DataError(f"data.val_fraction={self.val_fraction} of the {self.carved_from} training examples "
                                "leaves no validation example; raise data.val_fraction or use more training data.")
            raise DataError(f"The {self.name} data has no {split} examples; give a {split} file with at least one.")
        sampler = BucketBatchSampler(ds.lengths(), self.batch_size if shuffle else self.eval_batch_size,
                                     shuffle=shuffle, seed=self.seed)
        per_token = self.task_class.per_token
        collate = Collate(self.task_class.collate_labels, never_seen=self.never_seen if per_token else None,
                          char_table=self.char_table if per_token else None,
                          unk_replace=self.unk_replace if shuffle else 0.0, rare=self.rare)
        return ResumableDataLoader(ds, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=collate,
                                   persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _take(labels: torch.Tensor | Ragged, index: torch.Tensor):
    return labels.subset(index) if isinstance(labels, Ragged) else labels[index]


def _relabel(labels: torch.Tensor | Ragged, table: torch.Tensor):
    """Label ids through `table`; negative ids (UNSEEN_LABEL and a task's other codes for labels training lacks)
    kept as they are."""
    def through(ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        return torch.where(ids < 0, ids, table[ids.clamp(min=0)])

    if isinstance(labels, Ragged):
        return Ragged(through(labels.values).to(torch.int32), labels.offsets)
    return through(labels)
