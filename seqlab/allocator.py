"""`reuse_memory: true`: keep freed heap memory for reuse instead of handing large blocks back to the kernel.

Why: glibc's malloc serves every block above its mmap threshold (at most 32 MB) with a fresh `mmap` and unmaps it on
`free`. A recurrent training step over long sequences allocates such blocks many times (IMDB, BiLSTM 128, batch 64,
400 tokens: the gates alone are 52 MB per direction), and every page of every fresh block is a page fault when first
written: ~120,000 minor faults per step, measured with `scripts/bench_train.py --reuse-memory` both ways. With mmap
off for malloc and the heap never trimmed, the blocks are reused and a step page-faults almost never.

The cost: memory that training freed stays with the process (its peak), until it ends. Only glibc (Linux) has
`mallopt`; elsewhere this does nothing and says so once in the log.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
_applied = False


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (process-wide, once); False where that is not possible."""
    global _applied
    if _applied:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("reuse_memory: this C library has no mallopt (not glibc); memory is allocated as it decides.")
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # M_MMAP_MAX 0: large blocks come from the heap too; M_TRIM_THRESHOLD 2**31-1: the heap is never trimmed.
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
