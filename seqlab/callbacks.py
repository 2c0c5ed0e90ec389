"""Lightning callbacks: one log line per epoch with its metrics, time and training throughput."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger("seqlab")


class EpochSummary(pl.Callback):
    """Logs `epoch N: train/loss=... val/acc=... lr=0.001 | 41.2 s, 52,000 tokens/s`; tokens/s also to TensorBoard."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start, self.tokens = time.perf_counter(), 0
        # the rate this epoch trains with: epoch-interval schedulers step before on_train_epoch_end
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch has no on_train_epoch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += int(batch["lengths"].sum())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.start
        rate = self.tokens * trainer.world_size / max(seconds, 1e-9)
        pl_module.log("train/tokens_per_s", rate, on_epoch=True, rank_zero_only=True)
        shown = {k: float(v) for k, v in trainer.callback_metrics.items()
                 if k in ("train/loss_epoch", "train/acc") or k.startswith("val/")}
        text = " ".join(f"{k.replace('_epoch', '')}={v:.4f}" for k, v in sorted(shown.items()))
        if self.lr is not None:
            text += f" lr={self.lr:.3g}"
        if trainer.is_global_zero:
            log.info("epoch %d: %s | %.1f s, %s tokens/s", trainer.current_epoch, text, seconds, f"{rate:,.0f}")
