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


class Budget:
    """How far a run is against its budget: optimizer steps taken and seconds spent training.

    The clock counts training steps only (not evaluation or saving), and it is saved with the run,
    so a resumed run continues the same schedule. It is advanced at log steps, after the loop waits
    for the device: on a GPU the host only queues the steps, and its own time would undercount them.
    Under data parallelism every rank adds rank 0's seconds, so all ranks follow one schedule.
    """

    def __init__(self, cfg: TrainConfig, step: int = 0, seconds: float = 0.0):
        self.cfg, self.step, self.seconds = cfg, step, seconds
        self.timed_step = step  # the step that `seconds` reaches

    def progress(self) -> float:
        return progress_of(self.step, self.seconds, self.cfg)

    def spent(self) -> bool:
        return self.progress() >= 1.0

    def lr(self) -> float:
        """The learning rate of the next step."""
        return lr_at(self.step, self.progress(), self.cfg)

    def tick(self) -> None:
        """One step done."""
        self.step += 1

    def add_seconds(self, seconds: float) -> None:
        """The training time of the steps since the last call."""
        self.seconds += seconds
        self.timed_step = self.step

    def expected_steps(self) -> float | None:
        """How many steps the run will take: exact for a step budget, from the pace so far for a time
        budget (None before its first timed steps)."""
        lengths = [self.cfg.steps] if self.cfg.steps is not None else []
        if self.cfg.time_budget is not None and self.seconds > 0:
            lengths.append(self.timed_step * self.cfg.time_budget / self.seconds)
        return min(lengths, default=None)

    def log_due(self) -> bool:
        """A log step: every `log_every` steps, and the last step of a step budget."""
        return self.step % self.cfg.log_every == 0 or (self.cfg.steps is not None and self.step >= self.cfg.steps)

    def next_eval(self) -> int:
        """The first step after this one at which to evaluate."""
        return (self.step // self.cfg.eval_every + 1) * self.cfg.eval_every
