"""What `--resume` restores beyond the weights: optimizer, RNG, clock, best loss, patience and the carried state.

With a fixed seed on the CPU, a run stopped and resumed computes the same losses as one that never
stopped: the optimizer moments, the random generators (dropout), the budget's clock and the hidden
state carried into the next window are all saved in `last.safetensors` (`Checkpoint.resume_state`).
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


def rank_rows(hidden: State | None, rows: int, world: World) -> State | None:
    """This rank's `rows` rows of a saved (global) hidden state; None when the run resumes with another global batch."""
    if hidden is None or state_rows(hidden) != rows * world.size:
        return None
    return slice_rows(hidden, world.rank * rows, (world.rank + 1) * rows)


def capture(optimizer: torch.optim.Optimizer, device: torch.device, seconds: float, best: float,
            hidden: State | None, stale: int = 0) -> dict[str, Any]:
    """The resume state to save (`hidden` holds the rows of all ranks; `stale` counts the evaluations
    since the validation loss last improved, for --patience)."""
    return {"optimizer": optimizer.state_dict(), "rng": rng_state(device), "seconds": seconds, "best": best,
            "hidden": hidden, "stale": stale}


@dataclass
class Restored:
    seconds: float
    best: float
    hidden: State | None  # this rank's rows, on the device
    stale: int = 0  # evaluations since the validation loss last improved


def restore(saved: dict[str, Any], optimizer: torch.optim.Optimizer, device: torch.device, rows: int,
            world: World) -> Restored:
    """Load the optimizer and RNG state saved by `capture`; the clock, best loss, this rank's carried rows
    and the patience count (0 in checkpoints written before --patience)."""
    optimizer.load_state_dict(saved["optimizer"])
    set_rng_state(saved["rng"], device)
    return Restored(float(saved["seconds"]), float(saved["best"]),
                    rank_rows(state_to(saved.get("hidden"), device), rows, world), int(saved.get("stale", 0)))
