"""What `--resume` restores beyond the weights: optimizer, RNG, clock, best loss, patience and the carried state.

With a fixed seed on the CPU, a run stopped and resumed computes the same losses as one that never
stopped: the optimizer moments, the random generators (dropout; one state per rank), the budget's
clock and the hidden state carried into the next window are all saved in `last.safetensors`
(`Checkpoint.resume_state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from rnngen.models.checkpoint import Checkpoint
from rnngen.models.state import State, select_rows, state_rows, state_to
from rnngen.store.runs import RunFolder
from rnngen.training.distributed import World


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def restore_rng(saved: list[dict[str, torch.Tensor]], device: torch.device, world: World, seed: int) -> None:
    """Restore this rank's saved generators (`saved` holds one state per rank); a rank the run did not have (more
    processes now) seeds its own with `seed + rank`, so no two ranks draw the same dropout masks."""
    if world.rank < len(saved):
        set_rng_state(saved[world.rank], device)
    else:
        torch.manual_seed(seed + world.rank)


def device_flags(optimizer: torch.optim.Optimizer) -> None:
    """Give the param groups this optimizer's own implementation flags: a state saved on a GPU says
    fused=True, which CPUs reject on torch before 2.4."""
    for group in optimizer.param_groups:
        for flag in ("fused", "foreach"):
            if flag in optimizer.defaults:
                group[flag] = optimizer.defaults[flag]


def rank_rows(hidden: State | None, rows: int, world: World) -> State | None:
    """This rank's `rows` rows of a saved (global) hidden state; None when the run resumes with another global batch."""
    if hidden is None or state_rows(hidden) != rows * world.size:
        return None
    return select_rows(hidden, range(world.rank * rows, (world.rank + 1) * rows))


def capture(
    optimizer: torch.optim.Optimizer,
    rngs: list[dict[str, torch.Tensor]],
    seconds: float,
    best: float,
    hidden: State | None,
    evals_without_improvement: int = 0,
    weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The resume state to save (`rngs` holds every rank's generators, `hidden` the rows of all ranks;
    `evals_without_improvement` counts the evaluations since the validation loss last improved, for patience;
    `weights` are the training weights when the checkpoint's own are their average, with --ema)."""
    state = {
        "optimizer": optimizer.state_dict(),
        "rng": rngs,
        "seconds": seconds,
        "best": best,
        "hidden": hidden,
        "stale": evals_without_improvement,
    }
    return state if weights is None else {**state, "weights": weights}


@dataclass
class Restored:
    seconds: float
    best: float
    hidden: State | None  # this rank's rows, on the device
    evals_without_improvement: int = 0  # since the validation loss last improved


def restore(
    saved: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    rows: int,
    world: World,
    seed: int,
) -> Restored:
    """Load the optimizer and this rank's RNG state saved by `capture` (`seed` serves a rank that has
    none); the clock, best loss, this rank's carried rows and the patience count."""
    optimizer.load_state_dict(saved["optimizer"])
    device_flags(optimizer)
    restore_rng(saved["rng"], device, world, seed)
    return Restored(
        float(saved["seconds"]),
        math.inf if saved["best"] is None else float(saved["best"]),  # strict JSON stores no evaluation's inf as null
        rank_rows(state_to(saved["hidden"], device), rows, world),
        int(saved["stale"]),
    )


def restore_from(
    ckpt: Checkpoint,
    run: RunFolder,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    rows: int,
    world: World,
) -> Restored:
    """`restore` the checkpoint's resume state; a weights-only checkpoint resumes as `resume_without_state` says."""
    if ckpt.resume_state is None:
        return resume_without_state(ckpt, run, world)
    return restore(ckpt.resume_state, optimizer, device, rows, world, seed=ckpt.training.seed + ckpt.step)


def resume_without_state(ckpt: Checkpoint, run: RunFolder, world: World) -> Restored:
    """Resume from a checkpoint without resume state (a `best.safetensors` copied over `last`): the
    optimizer starts fresh, the clock is the one logged at the checkpoint's step, nothing is carried."""
    # New dropout masks, not the first steps' again, and each rank its own.
    torch.manual_seed(ckpt.training.seed + ckpt.step + world.rank)
    best = ckpt.best_val_loss if ckpt.best_val_loss is not None else math.inf
    return Restored(seconds_of(ckpt, run), best, None)


def seconds_of(ckpt: Checkpoint, run: RunFolder) -> float:
    """The training seconds spent when `ckpt` was saved: in its resume state, else in the run's metrics."""
    return float(ckpt.resume_state["seconds"]) if ckpt.resume_state is not None else run.seconds_at(ckpt.step)
