"""Length-bucketing batch sampler: similar lengths share a batch (little padding), batch order shuffled per epoch.

Works under DDP without Lightning's DistributedSampler: every rank computes the same global list of batches from
(seed, epoch) and takes every `num_replicas`-th batch, so ranks are disjoint, together cover every index exactly
once per epoch, and all get the same number of batches (gradient all-reduce needs that).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class EpochPermutation(Sampler[int]):
    """A permutation of range(n) drawn from (seed, epoch); `set_epoch` is called by Lightning before each epoch."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices with similar lengths.

    Indices come in the order of `self.sampler` (shuffled per epoch when `shuffle`); each pool of
    `batch_size * pool_factor` of them is sorted by length and cut into batches; then the batch order is shuffled.
    With `shuffle=False` (evaluation) the whole set is sorted by length. `num_replicas`/`rank` default to the
    torch.distributed process group when one is initialised.
    """

    def __init__(self, lengths: Sequence[int] | torch.Tensor, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, pool_factor: int = 50, num_replicas: int | None = None, rank: int | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths = torch.as_tensor(lengths, dtype=torch.int64)
        self.batch_size, self.shuffle, self.seed, self.pool_factor = batch_size, shuffle, seed, pool_factor
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        if len(self.lengths) < num_replicas:
            raise ValueError(f"{len(self.lengths)} examples cannot be shared by {num_replicas} processes")
        self.num_replicas, self.rank = num_replicas, rank
        self.sampler = EpochPermutation(len(self.lengths), seed, shuffle)
        self._resume = (-1, 0)  # (epoch, batches already trained on): see resume_at

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of this epoch, in order; rank r iterates over items r, r + R, r + 2R, ..."""
        order = torch.tensor(list(self.sampler), dtype=torch.int64)
        pool = len(order) if not self.shuffle else self.batch_size * self.pool_factor
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[torch.sort(self.lengths[chunk], stable=True).indices]
            batches.extend(chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.sampler.epoch + 7)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        # Equal batch counts on every rank: split the largest batches until the count divides evenly.
        while len(batches) % self.num_replicas:
            k = max(range(len(batches)), key=lambda i: len(batches[i]))
            b = batches[k]
            batches[k:k + 1] = [b[:len(b) // 2], b[len(b) // 2:]]
        return batches

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Iterations over `epoch` start after its first `batches_done` batches (a run resumed mid-epoch)."""
        self._resume = (epoch, batches_done)

    def resume_offset(self) -> int:
        """How many of this epoch's batches an iteration skips (0 unless resumed in this epoch)."""
        epoch, done = self._resume
        return done if epoch == self.sampler.epoch else 0

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.global_batches()[self.rank::self.num_replicas][self.resume_offset():]

    def __len__(self) -> int:
        n_batches = -(-len(self.lengths) // self.batch_size)
        return -(-n_batches // self.num_replicas)
