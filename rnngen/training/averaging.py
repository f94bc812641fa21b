"""An exponential moving average of the weights (Polyak averaging), for evaluation, samples and checkpoints.

Late in a short run on a small corpus the weights keep moving while the held-out loss stands still:
on tiny shakespeare (unigram 1024, the `cpu` preset, 1800 steps) the training loss fell from 2.82 to
2.40 nats over the last third while the validation loss stayed at 3.06-3.08, and two runs of the
same seed ended at 2.049 and 2.012 bits/char. An average of the recent weights sits nearer the
middle of the valley than any one of them: 2.014 and 2.011 in those runs.

The average's time constant is a share of the run, not a fixed number of steps: the same 180 s is
600 steps on one machine and 1800 on another, and a fixed decay that suits one lags far behind on
the other. The decay at each step is 1 - 1/horizon, the horizon being the share of the run's
expected length in steps (`Budget.expected_steps`).
"""

from __future__ import annotations

import copy

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from rnngen.models import RecurrentLM


def ema_decay(share: float, run_steps: float | None) -> float:
    """The decay for a time constant of `share` of a run of `run_steps` steps (0, a copy, while unknown)."""
    horizon = share * run_steps if run_steps else 0.0
    return 1.0 - 1.0 / horizon if horizon > 1 else 0.0


class WeightAverage:
    """The training weights' moving average (`model`), updated after every optimizer step.

    torch's `AveragedModel` would keep its step count in a tensor and read it at every update, a wait
    for the GPU at each step; this keeps it on the host and uses torch's own EMA update (one fused
    lerp over all tensors).
    """

    def __init__(self, model: RecurrentLM, share: float):
        self.share = share
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.started = False  # the first update copies the weights

    def update(self, model: RecurrentLM, run_steps: float | None) -> None:
        """Move the average towards `model`'s weights, for a run expected to last `run_steps` steps."""
        decay = ema_decay(self.share, run_steps) if self.started else 0.0
        with torch.no_grad():
            get_ema_multi_avg_fn(decay)(list(self.model.parameters()), [p.detach() for p in model.parameters()], None)
        self.started = True

    def restore(self) -> None:
        """Continue from the averaged weights loaded into `model` (on --resume)."""
        self.started = True
