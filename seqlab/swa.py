"""Stochastic weight averaging from `model.swa` (Izmailov et al. 2018), through Lightning's callback.

`model.swa: {swa_lrs: 1e-3, swa_epoch_start: 5, annealing_epochs: 1}` takes the arguments of Lightning's
`StochasticWeightAveraging`: from epoch `swa_epoch_start` (1-based; a fraction: of trainer.max_epochs) the learning
rate anneals to `swa_lrs` (SWALR, replacing model.scheduler) and the weights are averaged, Lightning's way: at the
start of every epoch from then on (so the average holds the weights after epochs swa_epoch_start - 1 ... max_epochs
- 1, not those after the last one).

What is selected and tested, honestly: checkpoints are chosen on validation per epoch, as always, with the weights
being trained (never the average). When training ends, the averaged weights are validated too and kept as
`checkpoints/swa.ckpt`; the test split is scored with whichever of the best checkpoint and swa.ckpt validated
better (a tie keeps the best checkpoint), and `metrics.json` says which (`tested_checkpoint`, `swa_val_<metric>`,
and the monitored `val_<metric>` is the tested model's).

`SWA` below is Lightning's callback with three changes: training stopped before max_epochs (trainer.max_time, early
stopping) still ends with the averaged weights (Lightning's keeps the last trained ones then); a run resumed
mid-epoch keeps its SWALR (Lightning installs it in on_train_epoch_start, which a mid-epoch resume skips, so the
resumed epoch would end without the scheduler's step); and a ReduceLROnPlateau that SWALR replaced is no longer
stepped by seqlab's PlateauStep (which would go on halving the SWA rate). With these, resuming with SWA on is exact
(tested).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, StochasticWeightAveraging

from seqlab.callbacks_resume import PlateauStep

log = logging.getLogger(__name__)
SWA_CHECKPOINT = "swa.ckpt"


class SWA(StochasticWeightAveraging):
    """StochasticWeightAveraging that also averages runs stopped early and resumes exactly (module docstring)."""

    @property
    def averaged(self) -> int:
        """How many weight snapshots the average holds (0: averaging never started)."""
        return 0 if self.n_averaged is None else int(self.n_averaged)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Restored SWA state: install SWALR now (with its saved state), since a mid-epoch resume never calls
        # on_train_epoch_start for the resumed epoch; the epoch's average update, already in the state, is skipped.
        if self._scheduler_state is not None and not self._initialized:
            super().on_train_epoch_start(trainer, pl_module)
        self._retire_replaced(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._retire_replaced(trainer)

    @staticmethod
    def _retire_replaced(trainer: pl.Trainer) -> None:
        """PlateauStep steps the plateau schedulers it found at fit start; keep only those Lightning still has."""
        for callback in trainer.callbacks:
            if isinstance(callback, PlateauStep):
                callback.configs = [(c, every) for c, every in callback.configs
                                    if any(c is active for active in trainer.lr_scheduler_configs)]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch - 1 == self.swa_end or self._max_epochs == -1  # Lightning transfers then
        super().on_train_end(trainer, pl_module)
        if not completed and self.averaged:
            log.info("Training stopped at epoch %d of %d: using the average of %d weight snapshots",
                     trainer.current_epoch, self._max_epochs, self.averaged)
            self.transfer_weights(self._average_model, pl_module)


def swa_callback(spec: dict[str, Any] | None) -> SWA | None:
    """The callback of `model.swa` (null: none)."""
    return None if not spec else SWA(**spec)


def better(score: float, than: float | None, mode: str) -> bool:
    return than is None or (score > than if mode == "max" else score < than)


def validate_average(trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule,
                     swa: SWA, ckpt: ModelCheckpoint, monitor: str, mode: str) -> dict[str, Any]:
    """After fit, with the averaged weights in `model`: validate them (not logged: the curves stay the trained
    weights'), save them as checkpoints/swa.ckpt and pick the checkpoint to test.

    Returns {"score": the averaged weights' validation score, "checkpoint": swa.ckpt, "selected": whether it
    validated better than the best checkpoint}; {} when averaging never started.
    """
    if not swa.averaged:
        log.warning("model.swa: averaging never started (training stopped before epoch %s); no swa.ckpt.",
                    swa._swa_epoch_start)
        return {}
    loggers = trainer.loggers
    trainer.loggers = []
    try:
        score = float(trainer.validate(model, datamodule=datamodule, verbose=False)[0][monitor])
    finally:
        trainer.loggers = loggers
    path = Path(ckpt.dirpath) / SWA_CHECKPOINT
    trainer.save_checkpoint(path, weights_only=True)
    best = None if ckpt.best_model_score is None else float(ckpt.best_model_score)
    selected = better(score, best, mode)
    log.info("SWA: %d snapshots averaged, %s %.4f (best checkpoint: %s); testing %s", swa.averaged, monitor, score,
             best, "swa.ckpt" if selected else "the best checkpoint")
    return {"score": score, "checkpoint": str(path), "selected": selected}
