"""What `--resume` restores beyond the weights: optimizer, RNG, clock, best loss, patience and the carried state.

With a fixed seed on the CPU, a run stopped and resumed computes the same losses as one that never
stopped: the optimizer moments, the random generators (dropout; one state per rank), the budget's
clock and the hidden state carried into the next window are all saved in `last.safetensors`
(`Checkpoint.resume_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rnngen.models.state import State, slice_rows, state_rows, state_to
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


def restore_rng(saved: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]], device: torch.device,
                world: World, seed: int) -> None:
    """Restore this rank's saved generators; a rank the run did not have (more processes now) seeds
    its own with `seed + rank`, so no two ranks draw the same dropout masks."""
    states = saved if isinstance(saved, list) else [saved]  # runs saved before per-rank states had one
    if world.rank < len(states):
        set_rng_state(states[world.rank], device)
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
    return slice_rows(hidden, world.rank * rows, (world.rank + 1) * rows)


def capture(optimizer: torch.optim.Optimizer, rngs: list[dict[str, torch.Tensor]], seconds: float, best: float,
            hidden: State | None, stale: int = 0) -> dict[str, Any]:
    """The resume state to save (`rngs` holds every rank's generators, `hidden` the rows of all ranks;
    `stale` counts the evaluations since the validation loss last improved, for --patience)."""
    return {"optimizer": optimizer.state_dict(), "rng": rngs, "seconds": seconds, "best": best, "hidden": hidden,
            "stale": stale}


@dataclass
class Restored:
    seconds: float
    best: float
    hidden: State | None  # this rank's rows, on the device
    stale: int = 0  # evaluations since the validation loss last improved


def restore(saved: dict[str, Any], optimizer: torch.optim.Optimizer, device: torch.device, rows: int,
            world: World, seed: int) -> Restored:
    """Load the optimizer and this rank's RNG state saved by `capture` (`seed` serves a rank that has
    none); the clock, best loss, this rank's carried rows and the patience count (0 in checkpoints
    written before --patience)."""
    optimizer.load_state_dict(saved["optimizer"])
    device_flags(optimizer)
    restore_rng(saved["rng"], device, world, seed)
    return Restored(float(saved["seconds"]), float(saved["best"]),
                    rank_rows(state_to(saved.get("hidden"), device), rows, world), int(saved.get("stale", 0)))
