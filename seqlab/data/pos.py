"""Part-of-speech tagging on Universal Dependencies English-EWT (r2.16): UPOS (default) or XPOS tags.

Words are the treebank's tokens (no re-tokenization). The tag set is read from the training file. Rule for a tag
that occurs in dev/test but never in train: it is appended to the label set after the training tags (and a warning
is logged), so those tokens count as errors, since the model can never predict them; accuracy stays honest.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from seqlab.data import cache
from seqlab.data.base import SequenceDataModule
from seqlab.data.cache import Ragged
from seqlab.data.conllu import ensure_ewt, ewt_filename, read_conllu
from seqlab.data.vocab import PAD, UNK
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)
SPLITS = {"train": "train", "val": "dev", "test": "test"}  # our split name -> EWT file suffix
CORPUS_VERSION = 2  # bump when _build_corpus changes what it stores: cached corpora of other versions are not reused


class PosDataModule(SequenceDataModule):
    """Reads EWT from `data.root` (downloading missing files), or the CoNLL-U files given as data.*_file."""

    name = "pos"
    task = "tagging"

    def __init__(self, root: str | Path, cache_dir: str | Path, train_file: str | None = None,
                 val_file: str | None = None, test_file: str | None = None, tag_field: str = "upos",
                 download: bool = True, **kwargs: Any):
        super().__init__(root, cache_dir, **kwargs)
        if tag_field not in ("upos", "xpos"):
            raise ConfigError(f"data.tag_field must be 'upos' or 'xpos', got {tag_field!r}.")
        given = {"train": train_file, "val": val_file, "test": test_file}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(f"data.{k}_file" for k, v in given.items() if not v)
            raise ConfigError(f"Give all three CoNLL-U files or none; {missing} is missing.")
        self.files = {k: Path(v).expanduser() for k, v in given.items()} if all(given.values()) else None
        self.tag_field, self.download = tag_field, download

    def paths(self) -> dict[str, Path]:
        """The three CoNLL-U files, downloading EWT files missing from data.root (when data.download is true)."""
        if self.files is not None:
            for key, path in self.files.items():
                if not path.is_file():
                    raise DataError(f"data.{key}_file {path} not found; point it at an existing CoNLL-U file.")
            return self.files
        out = {}
        for ours, theirs in SPLITS.items():
            path = self.root / ewt_filename(theirs)
            if not path.is_file() and not self.download:
                raise DataError(f"{path} not found and data.download=false; put the UD English-EWT r2.16 files "
                                f"in {self.root} or set data.root=DIR.")
            out[ours] = ensure_ewt(theirs, self.root)
        return out

    def _corpus_spec(self) -> dict[str, Any]:
        files = {k: cache.file_signature(p) for k, p in self.paths().items()}
        return {"dataset": "conllu", "version": CORPUS_VERSION, "files": files,
                "tag_field": self.tag_field, "lowercase": self.lowercase}

    def _build_corpus(self) -> dict[str, Any]:
        sents = {k: read_conllu(p, self.tag_field) for k, p in self.paths().items()}
        if self.lowercase:
            sents = {k: [([w.lower() for w in ws], ts) for ws, ts in v] for k, v in sents.items()}
        words = Counter(w for ws, _ in sents["train"] for w in ws)
        itos = [PAD, UNK, *sorted(words, key=lambda t: (-words[t], t))]
        # Word forms only in dev/test follow (training count 0: never in the kept vocabulary, but they keep their
        # characters for a character encoder, and are flagged unseen).
        itos += sorted({w for k in ("val", "test") for ws, _ in sents[k] for w in ws} - set(words))
        tag_counts = Counter(t for _, ts in sents["train"] for t in ts)
        labels = sorted(tag_counts, key=lambda t: (-tag_counts[t], t))
        unseen = sorted({t for k in ("val", "test") for _, ts in sents[k] for t in ts} - set(labels))
        if unseen:
            log.warning("Tags absent from training data (counted as errors): %s", ", ".join(unseen))
            labels += unseen
        stoi, tag_id = {t: i for i, t in enumerate(itos)}, {t: i for i, t in enumerate(labels)}
        corpus: dict[str, Any] = {"itos": itos, "labels": labels}
        for k, v in sents.items():
            corpus[k] = {"ids": Ragged.from_lists([[stoi.get(w, 1) for w in ws] for ws, _ in v]).state(),
                         "labels": Ragged.from_lists([[tag_id[t] for t in ts] for _, ts in v]).state()}
        return corpus
