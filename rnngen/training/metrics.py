"""Metrics of a log interval: losses and gradient norms stay on the device until the log step.

Reading them back is the only host-device synchronisation of the training loop: once per log
interval, not once per step. Events are stored (rank 0 writes metrics.jsonl) and passed to `on_event`.
"""

from __future__ import annotations

import time

import torch

from rnngen.store.runs import RunFolder
from rnngen.training import distributed
from rnngen.training.distributed import World
from rnngen.training.events import METRICS_ROWS, Event, EventFn


class Reporter:
    """Passes events to `on_event`; rank 0 also appends the ones that are metrics rows to metrics.jsonl."""

    def __init__(self, run: RunFolder, world: World, on_event: EventFn | None):
        self.run, self.world = run, world
        self.on_event = on_event or (lambda event: None)

    def __call__(self, event: Event) -> None:
        if self.world.is_main and isinstance(event, METRICS_ROWS):
            self.run.append_metrics(event.to_dict())
        self.on_event(event)


class Interval:
    """The steps since the last log line, with their loss and gradient norm as device tensors."""

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.started = self.ended = time.perf_counter()

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.pending.append((loss.detach(), grad_norm.detach()))

    def restart(self) -> None:
        self.pending.clear()
        self.started = self.ended = time.perf_counter()

    def seconds(self) -> float:
        """Seconds since the interval started; read after `losses_and_norms()` they include the device's work."""
        self.ended = time.perf_counter()
        return self.ended - self.started

    def steps_per_s(self) -> float:
        """Steps per second over the interval as of the last `seconds()`."""
        return len(self.pending) / max(self.ended - self.started, 1e-9)

    def losses_and_norms(self) -> torch.Tensor:
        """[steps, 2] losses and gradient norms on the CPU, averaged over the ranks (the one sync)."""
        values = torch.stack([torch.stack([loss.float(), norm.float()]) for loss, norm in self.pending])
        return distributed.mean(values).cpu()

    @staticmethod
    def first_non_finite(figures: torch.Tensor) -> int | None:
        """The index in the interval of the first step whose loss or gradient norm is not finite."""
        bad = (~torch.isfinite(figures)).any(1).nonzero()
        return int(bad[0]) if len(bad) else None
