"""Part-of-speech tagging on Universal Dependencies English-EWT (r2.16): UPOS (default) or XPOS tags.

Words are the treebank's tokens (no re-tokenization). The tag set is read from the training file alone, so the
model's shape does not depend on the test file. Rule for a tag that occurs in dev/test but never in train: its tokens
carry UNSEEN_LABEL and count as errors (the model can never predict it), and a warning names it; accuracy stays
honest. Raw text given to `predict.py` is tokenized with spaCy's blank English tokenizer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seqlab.data import cache
from seqlab.data.base import SequenceDataModule
from seqlab.data.conllu import ensure_ewt, ewt_filename, read_conllu
from seqlab.data.tagged import tagging_corpus
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)
CORPUS_VERSION = 3  # bump when what _build_corpus stores changes (3: tags from training only)
SPLITS = {"train": "train", "val": "dev", "test": "test"}  # our split name -> EWT file suffix


class PosDataModule(SequenceDataModule):
    """Reads EWT from `data.root` (downloading missing files), or the CoNLL-U files given as data.*_file."""

    name = "pos"
    default_task = "tagging"

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
        return tagging_corpus(sents, self.lowercase)
