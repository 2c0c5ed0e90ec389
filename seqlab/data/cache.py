"""On-disk caches of derived data: keyed by a fingerprint of their inputs, written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seqlab.atomic import atomic_open, atomic_write_text  # noqa: F401  (re-exported)

CACHE_FORMAT = 1  # of fingerprint(); each cache's builder adds its own code version
log = logging.getLogger(__name__)


def fingerprint(spec: dict[str, Any]) -> str:
    """A stable hex digest of a JSON-serialisable description of the inputs and settings."""
    blob = json.dumps({"format": CACHE_FORMAT, **spec}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def file_signature(path: Path) -> dict[str, Any]:
    """Cheap identity of a file for fingerprints: resolved path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def tree_signature(root: Path, subdirs: Sequence[str]) -> dict[str, Any]:
    """Identity of a directory tree for fingerprints: a digest of (name, size, mtime) of every file in subdirs."""
    h = hashlib.sha256()
    for sub in subdirs:
        entries = sorted(os.scandir(root / sub), key=lambda e: e.name) if (root / sub).is_dir() else []
        for e in entries:
            st = e.stat()
            h.update(f"{sub}/{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(root.resolve()), "files": h.hexdigest()}


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file beside `path`, then rename: readers never see a half-written cache."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def load(path: Path) -> Any | None:
    """The cached object, or None when absent or unreadable. An unreadable cache (truncated, corrupt, written by
    something else) is rebuilt by the caller, not trusted; a warning says why."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # torch.load raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        reason = " ".join(str(e).split())[:200] or "no message"
        log.warning("Cache %s is unreadable (%s: %s); rebuilding it.", path, type(e).__name__, reason)
        return None


class Ragged:
    """Variable-length int sequences stored flat: `values` (total,) int32 and `offsets` (n+1,) int64."""

    def __init__(self, values: torch.Tensor, offsets: torch.Tensor):
        self.values, self.offsets = values, offsets

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> Ragged:
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
        offsets = torch.zeros(len(seqs) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        values = torch.tensor([i for s in seqs for i in s], dtype=torch.int32)
        return cls(values, offsets)

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def subset(self, index: torch.Tensor) -> Ragged:
        return Ragged.from_tensors([self[int(i)] for i in index])

    @classmethod
    def from_tensors(cls, seqs: Sequence[torch.Tensor]) -> Ragged:
        lengths = torch.tensor([s.numel() for s in seqs], dtype=torch.int64)
        offsets = torch.zeros(len(seqs) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        values = torch.cat(list(seqs)).to(torch.int32) if seqs else torch.zeros(0, dtype=torch.int32)
        return cls(values, offsets)

    def map_values(self, table: torch.Tensor) -> Ragged:
        """Apply a lookup table to every id (e.g. full-vocabulary id -> kept-vocabulary id)."""
        return Ragged(table[self.values.long()].to(torch.int32), self.offsets)

    def state(self) -> dict[str, torch.Tensor]:
        return {"values": self.values, "offsets": self.offsets}
