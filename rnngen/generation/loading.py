"""From a checkpoint reference to a ready completer: what `rnngen.load` and `rnngen complete`/`chat` share."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any, NamedTuple

from rnngen.config import DEVICES
from rnngen.errors import RnngenError, param
from rnngen.generation.completer import Completer
from rnngen.store.resolve import require_tokenizer, resolve_checkpoint
from rnngen.store.runs import RunFolder


class LoadedCheckpoint(NamedTuple):
    """A completer, the run folder it comes from (config.json, tokenizer.model) and its checkpoint file."""

    completer: Completer
    run: RunFolder
    path: Path


def may_have_gpu() -> bool:
    """Whether torch could find a GPU here, asked without importing torch (a second or two): a GPU driver's
    device (NVIDIA, AMD's ROCm, CUDA under WSL) on Linux, Apple silicon for MPS; elsewhere, perhaps."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    if sys.platform.startswith("linux"):
        return any(
            os.path.exists(path) for path in ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
        )
    return True


def pick_device(name: str) -> Any:
    """The device named: "cpu" as it is, where the model runs in NumPy and torch is not even imported;
    "auto", "cuda" or "mps" through `rnngen.models.device.pick` (an absent device is an error). "auto" on a
    machine without a GPU is "cpu" at once."""
    if name == "cpu" or (name == "auto" and not may_have_gpu()):
        return "cpu"
    if name not in DEVICES:  # before torch is imported: a typo is told at once
        raise RnngenError(f"unknown {param('device')} {name!r}: choose one of {', '.join(DEVICES)}")
    from rnngen.models import device

    return device.pick(name)


def load_completer(checkpoint: str | None, checkpoints_dir: Path, device: str = "cpu") -> LoadedCheckpoint:
    """The completer for `checkpoint` on `device`.

    `checkpoint` is a run folder, a run name under `checkpoints_dir`, a .safetensors file,
    `hf:USER/NAME[@REVISION]`, or None for the latest run under `checkpoints_dir` (`resolve_checkpoint`).
    """
    where = pick_device(device)  # first: an unknown device is told before anything is read
    run, path = resolve_checkpoint(checkpoint, checkpoints_dir)
    require_tokenizer(run)
    return LoadedCheckpoint(Completer.from_checkpoint(run, path, where), run, path)
