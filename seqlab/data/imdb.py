"""IMDB Large Movie Review sentiment classification (Maas et al., 2011): 25k train / 25k test reviews."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from seqlab.data import cache
from seqlab.data.base import SequenceDataModule
from seqlab.data.download import download, safe_extract
from seqlab.data.text import classification_corpus
from seqlab.data.tokenize import tokenize_many, tokenizer_version
from seqlab.errors import DataError

log = logging.getLogger(__name__)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_CHECKSUM = "sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
LABELS = ["neg", "pos"]
CORPUS_VERSION = 3  # bump when _build_corpus changes what it stores: cached corpora of other versions are not reused
SUBDIRS = [f"{split}/{label}" for split in ("train", "test") for label in LABELS]


def _is_tree(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in SUBDIRS)


class IMDBDataModule(SequenceDataModule):
    """Reads `data.root`: an extracted `aclImdb/` tree, else a `.tar.gz` with that layout, else downloads it."""

    name = "imdb"
    default_task = "classification"

    def __init__(self, root: str | Path, cache_dir: str | Path, url: str = IMDB_URL,
                 checksum: str | None = IMDB_CHECKSUM, download: bool = True, **kwargs: Any):
        super().__init__(root, cache_dir, **kwargs)
        self.url, self.checksum, self.download = url, checksum, download
        self._source: tuple[str, Path] | None = None

    def source(self) -> tuple[str, Path]:
        """("tree", dir) or ("archive", file), downloading the official archive when neither is present."""
        if self._source is None:
            self._source = self._find_source()
        return self._source

    def _find_source(self) -> tuple[str, Path]:
        root = self.root
        for cand in (root / "aclImdb", root):
            if _is_tree(cand):
                return "tree", cand
        archives = sorted(root.glob("*.tar.gz")) + sorted(root.glob("*.tgz")) if root.is_dir() else []
        archives.sort(key=lambda p: p.name != "aclImdb_v1.tar.gz")  # the official name first
        if archives:
            return "archive", archives[0]
        dest = root / "aclImdb_v1.tar.gz"
        where = (f"put aclImdb_v1.tar.gz (or an extracted aclImdb/ folder) in {root}, "
                 "or set data.root=DIR (or SEQLAB_DATA_DIR) to a folder that holds it")
        if not self.download:
            raise DataError(f"No IMDB data in {root} and data.download=false; {where}.")
        log.info("Downloading IMDB from %s to %s", self.url, dest)
        return "archive", download(self.url, dest, self.checksum,
                                   offline_hint=f"if this machine is offline, {where}")

    def _corpus_spec(self) -> dict[str, Any]:
        kind, path = self.source()
        sig = cache.file_signature(path) if kind == "archive" else cache.tree_signature(path, SUBDIRS)
        return {"dataset": "imdb", "version": CORPUS_VERSION, "source": sig, "lowercase": self.lowercase,
                "tokenizer": tokenizer_version(self.tokenizer_spec)}

    def _tree(self) -> Path:
        kind, path = self.source()
        if kind == "tree":
            return path
        target = self.cache_dir / f"imdb-extracted-{cache.fingerprint(cache.file_signature(path))}"
        if not _is_tree(target / "aclImdb"):
            log.info("Extracting %s to %s", path, target)
            safe_extract(path, target)  # into a temp dir renamed to `target` when complete: a failure leaves nothing
        if not _is_tree(target / "aclImdb"):
            shutil.rmtree(target)  # not the IMDB layout: nothing to keep in the cache
            raise DataError(f"{path} does not contain the aclImdb/{{train,test}}/{{neg,pos}}/ folders of the IMDB "
                            "dataset; use the official aclImdb_v1.tar.gz.")
        return target / "aclImdb"

    def _build_corpus(self) -> dict[str, Any]:
        tree = self._tree()
        texts, labels = {}, {}
        for split in ("train", "test"):
            texts[split], labels[split] = [], []
            for y, label in enumerate(LABELS):
                for f in sorted((tree / split / label).glob("*.txt")):
                    texts[split].append(_read_review(f))
                    labels[split].append(y)
        tokens = {s: tokenize_many(texts[s], self.lowercase, self.tokenizer_workers, desc=f"tokenizing IMDB {s}",
                                   spec=self.tokenizer_spec)
                  for s in ("train", "test")}
        return classification_corpus(tokens, labels, LABELS)


def _read_review(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 (byte {e.start}); "
                        "re-extract the IMDB archive or fix the file.") from e
