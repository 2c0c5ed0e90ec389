"""Lightning callbacks: one log line per epoch with its metrics, time and training throughput."""

from __future__ import annotations

import logging
import statistics
import time

import pytorch_lightning as pl

log = logging.getLogger("seqlab")


class EpochSummary(pl.Callback):
    """Logs `epoch N: train/loss=... val/acc=... lr=0.001 | 41.2 s, 52,000 tokens/s` (seconds: the whole epoch;
    tokens/s: training tokens over the time spent training, validation left out); tokens/s also to TensorBoard."""

    def __init__(self):
        self.rates: list[float] = []  # training tokens/s of each epoch (validation time left out)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start, self.tokens, self.validating = time.perf_counter(), 0, 0.0
        # the rate this epoch trains with: epoch-interval schedulers step before on_train_epoch_end
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch has no on_train_epoch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += int(batch["lengths"].sum())

    def on_validation_start(self, trainer, pl_module) -> None:
        self.val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and hasattr(self, "validating"):
            self.validating += time.perf_counter() - self.val_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.start
        rate = self.tokens * trainer.world_size / max(seconds - self.validating, 1e-9)
        self.rates.append(rate)
        pl_module.log("train/tokens_per_s", rate, on_epoch=True, rank_zero_only=True)
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if hasattr(pl_module, "train_epoch_means"):  # logged by the module after this hook: read them directly
            shown.update(pl_module.train_epoch_means())
        text = " ".join(f"{k}={v:.4f}" for k, v in sorted(shown.items()))
        if self.lr is not None:
            text += f" lr={self.lr:.3g}"
        if trainer.is_global_zero:
            log.info("epoch %d: %s | %.1f s, %s tokens/s", trainer.current_epoch, text, seconds, f"{rate:,.0f}")

    def median_rate(self) -> float | None:
        """The median training tokens/s over the epochs (None before the first)."""
        return statistics.median(self.rates) if self.rates else None
