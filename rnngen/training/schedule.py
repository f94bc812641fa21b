"""The budget and the learning-rate schedule: how far a run is, and the rate at each step."""

from __future__ import annotations

import math

from rnngen.config import TrainConfig


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup` steps, then cosine decay from the peak, where warmup ended, to
    `min_lr_ratio * lr` at the end of the budget.

    The decay runs over the budget left after warmup. A time budget does not say in advance how
    much of it warmup will take, so that share is estimated from the pace so far
    (`progress * warmup / step`): exact at a steady pace, and computed from the step and the
    progress alone, so a resumed run follows the same curve.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    warmup_share = progress * cfg.warmup / step if step else 0.0
    decayed = (progress - warmup_share) / (1.0 - warmup_share) if warmup_share < 1.0 else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, decayed))))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def progress_of(step: int, seconds: float, cfg: TrainConfig) -> float:
    """How much of the budget is spent, in [0, 1]: steps or wall-clock time, whichever is further."""
    fractions = []
    if cfg.steps is not None:
        fractions.append(step / cfg.steps)
    if cfg.time_budget is not None:
        fractions.append(seconds / cfg.time_budget)
    return min(1.0, max(fractions))
