"""Which device to run on (its arithmetic: `rnngen.models.precision`)."""

from __future__ import annotations

import torch

from rnngen.errors import RnngenError, param


def pick(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; naming an absent device is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise RnngenError(
            f"{param('device')} cuda: no CUDA GPU is visible to PyTorch; use {param('device')} cpu (or auto)"
        )
    if name == "mps" and not mps:
        raise RnngenError(
            f"{param('device')} mps: Apple's MPS backend is not available here; use {param('device')} cpu (or auto)"
        )
    return torch.device(name)
