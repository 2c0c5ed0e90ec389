"""A training DataLoader that remembers where it is in the epoch, so a run resumed mid-epoch continues exactly.

Lightning saves `state_dict()` of every training DataLoader that has one inside each checkpoint (FitLoop) and, on
resume, calls `load_state_dict()` before it creates the resumed epoch's iterator. The batch sampler (a
`BucketBatchSampler`) then starts that epoch after the batches already trained on: same (seed, epoch) order, no
batch repeated or loaded twice. Without this, Lightning restarts a resumed epoch's data from its first batch.

Random choices made while collating a batch (`data.unk_replace`) must repeat on resume too: each batch is collated
from torch's global RNG seeded by (seed, rank, epoch, position in the epoch), so they depend on the batch alone
(in this process: with `num_workers > 0` the workers' draws still depend on where their iterator started).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from seqlab.errors import ConfigError


def seed_torch(seed: int) -> None:
    """torch.manual_seed for the generators in use: the CPU one, and CUDA's once CUDA is initialised.
    (torch.manual_seed also seeds every other backend it knows; ~1 ms, which twice per step is a few % of a step.)"""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that differs for every tuple of integers."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `BucketBatchSampler` (`batch_sampler=`) whose position in the epoch is checkpointed."""

    _position = 0  # batches of the current epoch handed out (including those skipped on resume)

    def __iter__(self) -> Iterator[Any]:
        # A generator: its body runs at the first `next()`, after Lightning has called `set_epoch` for the epoch.
        sampler = self.batch_sampler
        self._position = sampler.resume_offset()
        batches = super().__iter__()
        while True:
            seed_torch(derived_seed(sampler.seed, sampler.rank, sampler.sampler.epoch, self._position))
            try:
                batch = next(batches)
            except StopIteration:
                return
            self._position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.sampler.epoch, "batches": self._position, "num_batches": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["num_batches"] != len(self):
            raise ConfigError(f"The checkpoint was saved with {state['num_batches']} training batches per epoch, this "
                              f"run has {len(self)}; resume with the data and data.batch_size of the interrupted run.")
        self.batch_sampler.resume_at(state["epoch"], state["batches"])
