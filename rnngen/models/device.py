"""Which device to run on, and the autocast that goes with it."""

from __future__ import annotations

import contextlib

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


def computes_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 arithmetic of its own: CUDA GPUs since Ampere, and x86 CPUs with AVX512-BF16 or AMX,
    where oneDNN's LSTM trains 1.6-1.8x faster in bf16 (docs/performance.md). Elsewhere bf16 is emulated, and
    slower."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8  # Ampere's compute capability 8.0 and later
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # newer than the oldest torch rnngen runs on
    if device.type != "cpu" or capabilities is None:
        return False
    found = capabilities()
    return bool(found.get("avx512_bf16") or found.get("amx_bf16"))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's arithmetic for `precision` (config.PRECISIONS) on `device`: bf16 autocast (no loss
    scaling needed, unlike fp16; the weights stay float32) for "bf16", and for "auto" where the device computes
    bf16 natively; full precision otherwise."""
    if precision == "fp32" or (precision == "auto" and not computes_bf16(device)):
        return contextlib.nullcontext()
    if device.type not in ("cpu", "cuda"):
        raise RnngenError(f"{param('precision')} bf16 runs on cpu or cuda, not {device.type}: use fp32 (or auto)")
    return torch.autocast(device.type, dtype=torch.bfloat16)
