"""Learning-rate schedules built of torch's pieces, for `model.scheduler` (by `_target_`).

`WarmupCosine`: linear warm-up, then cosine decay — torch's LinearLR then CosineAnnealingLR in a SequentialLR,
with the step counts given once. Usually stepped per batch (`interval: step`) with `total_steps: auto`, which
SeqModel fills with the trainer's estimated optimizer steps (seqlab.models.module.AUTO_KEYS). One-cycle is
torch's own `torch.optim.lr_scheduler.OneCycleLR` with `total_steps: auto`.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


def warmup_steps_of(total_steps: int, warmup_steps: int, warmup_fraction: float) -> int:
    """Warm-up length in steps: `warmup_steps` if > 0, else `warmup_fraction` of `total_steps` (rounded)."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    steps = warmup_steps or round(warmup_fraction * total_steps)
    if not 0 <= steps < total_steps:
        raise ValueError(f"the warm-up ({steps} steps) must be shorter than total_steps ({total_steps})")
    return steps


class WarmupCosine(SequentialLR):
    """lr(t) = lr * (start_factor + (1 - start_factor) * t / W) for t < W, then
    eta_min + (lr - eta_min) * (1 + cos(pi * (t - W) / (total_steps - W))) / 2 up to t = total_steps.

    W = `warmup_steps`, or when that is 0 `warmup_fraction` * total_steps (rounded); `lr` is the optimizer's rate
    (model.optimizer.lr).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, warmup_fraction: float = 0.0,
                 start_factor: float = 0.01, eta_min: float = 0.0):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer (or auto), got {total_steps!r}")
        if not 0.0 < start_factor <= 1.0:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor}")
        if eta_min < 0:
            raise ValueError(f"eta_min must be >= 0, got {eta_min}")
        warmup = warmup_steps_of(total_steps, warmup_steps, warmup_fraction)
        self.total_steps, self.warmup_steps = total_steps, warmup
        cosine = CosineAnnealingLR(optimizer, T_max=total_steps - warmup, eta_min=eta_min)
        if warmup == 0:
            super().__init__(optimizer, [cosine], milestones=[])
            return
        linear = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
        super().__init__(optimizer, [linear, cosine], milestones=[warmup])
