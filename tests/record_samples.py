"""A test aid injected through the `callbacks` setting (tests/test_ddp.py), with tests/ on PYTHONPATH:

    PYTHONPATH=tests python scripts/train.py +callbacks.samples._target_=record_samples.RecordSamples ...
"""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

from seqlab.atomic import atomic_write_text


class RecordSamples(pl.Callback):
    """Each rank writes `<out_dir>/rank<r>.json`, {epoch: [training sample ids, in order]}; `out_dir` defaults to
    `<run dir>/samples` (the trainer's default_root_dir).

    The ids are those the rank's batch sampler yields for the epoch; each batch the model receives is checked to be
    the collated examples at those ids, so only batches actually trained on are recorded (a DDP test checks the
    ranks together see every training example exactly once per epoch).
    """

    def __init__(self, out_dir: str | Path | None = None):
        self.out_dir = Path(out_dir) if out_dir else None
        self.seen: dict[int, list[list[int]]] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        epoch, loader = trainer.current_epoch, trainer.train_dataloader
        if epoch not in self.seen:  # the sampler's epoch is set before the epoch's first batch
            self.planned, self.seen[epoch] = list(loader.batch_sampler), []
        ids = self.planned[len(self.seen[epoch])]
        expected = loader.collate_fn([loader.dataset[i] for i in ids])["tokens"]
        if not torch.equal(expected, batch["tokens"].cpu()):
            raise RuntimeError(f"rank {trainer.global_rank}: training batch {batch_idx} is not the sampler's {ids}")
        self.seen[epoch].append(ids)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = self.out_dir or Path(trainer.default_root_dir) / "samples"
        record = {str(epoch): [i for ids in batches for i in ids] for epoch, batches in self.seen.items()}
        atomic_write_text(json.dumps(record) + "\n", out / f"rank{trainer.global_rank}.json")
