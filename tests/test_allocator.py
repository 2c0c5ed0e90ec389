"""reuse_memory: after reuse_freed_memory(), a large block freed and allocated again costs no new page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import torch
from seqlab.allocator import reuse_freed_memory

def faults_per_step():
    for _ in range(8):  # warm up: the heap settles after a few blocks
        torch.ones(64 * 2**20 // 4).sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(64 * 2**20 // 4).sum()  # 64 MB, written once, freed at the end of the statement
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

if sys.argv[1] == "reuse":
    assert reuse_freed_memory() and reuse_freed_memory()  # once, then a no-op that still says yes
print(faults_per_step())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    def faults(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    pages = 64 * 2**20 // 4096
    assert faults("default") >= 0.9 * pages  # glibc maps a 64 MB block afresh: every page faults when written
    assert faults("reuse") < 0.01 * pages
