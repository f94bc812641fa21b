"""The arithmetic a model trains in: what `precision` "auto", "fp32" or "bf16" (config.PRECISIONS) resolves to on a
device, why, and the autocast that runs it.

bf16 is decided by what runs, not by the CPU's flags alone: the flags say what the hardware has, while oneDNN and
ATen may be limited below it (`ONEDNN_MAX_CPU_ISA`, `ATEN_CPU_CAPABILITY`), and on an x86 CPU without AVX512-BF16
oneDNN's LSTM does not run under bf16 autocast at all ("could not create a primitive descriptor"). So a tiny model
of the run's kind takes one step under bf16 autocast before the choice is made, once per process and kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass

import torch

from rnngen.config import ModelConfig
from rnngen.errors import RnngenError, param

FP32, BF16 = "fp32", "bf16"
# The layer whose bf16 kernels only a CPU with bf16 arithmetic has (oneDNN's LSTM): where it does not run, bf16 is
# at best emulated, slower than float32.
NATIVE_PROBE = "lstm"


@dataclass(frozen=True)
class Arithmetic:
    """What a run computes in: `precision` is "fp32" or "bf16", `requested` what the configuration asked for, and
    `reason` why the one became the other, as a user reads it ("this CPU has no bf16 arithmetic")."""

    precision: str
    requested: str
    reason: str

    @property
    def name(self) -> str:
        """The arithmetic as people say it: "bf16" or "float32"."""
        return "bf16" if self.precision == BF16 else "float32"

    def line(self) -> str:
        """One line for the start of a run: "arithmetic: float32 (auto: this CPU has no bf16 arithmetic)"."""
        return f"arithmetic: {self.name} ({self.requested}: {self.reason})"

    def to_dict(self) -> dict[str, str]:
        """The record a run's config.json and checkpoints keep beside the request."""
        return dataclasses.asdict(self)


def resolve(requested: str, device: torch.device, model: ModelConfig) -> Arithmetic:
    """The arithmetic `requested` (config.PRECISIONS) gives `model` on `device`: "auto" takes bf16 where the device
    computes it natively and the model's kind runs in it, else float32; "bf16" where the model's kind does not run in
    it is refused, naming the fix, before anything is written."""
    if requested == FP32:
        return Arithmetic(FP32, requested, "asked for")
    if device.type not in ("cpu", "cuda"):
        if requested == BF16:
            raise RnngenError(f"{param('precision')} bf16 runs on cpu or cuda, not {device.type}: use fp32 (or auto)")
        return Arithmetic(FP32, requested, f"bf16 runs on cpu or cuda, not {device.type}")
    hardware = "GPU" if device.type == "cuda" else "CPU"
    lacking = lacks_bf16(device)
    if requested == BF16:
        if not runs_bf16(device, model.kind, model.impl):
            raise RnngenError(
                f"{param('precision')} bf16: PyTorch cannot run the {model.kind} in bf16 on this {hardware} "
                f"(no bf16 arithmetic): use {param('precision')} fp32 (or auto)"
            )
        emulated = f"asked for; emulated on this {hardware}, slower"
        return Arithmetic(BF16, requested, emulated if lacking else "asked for")
    if lacking:
        return Arithmetic(FP32, requested, lacking)
    if not runs_bf16(device, model.kind, model.impl):
        return Arithmetic(FP32, requested, f"the {model.kind} does not run in bf16 on this {hardware}")
    return Arithmetic(BF16, requested, f"this {hardware} computes bf16")


def lacks_bf16(device: torch.device) -> str | None:
    """Why `device` (cpu or cuda) has no bf16 arithmetic of its own, or None where it has: CUDA GPUs since Ampere, and
    x86 CPUs with AVX512-BF16 or AMX that ATen and oneDNN are allowed to use, where oneDNN's LSTM trains 1.6-1.8x
    faster in bf16 (docs/performance.md)."""
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device)[0] >= 8:  # Ampere's compute capability 8.0 and later
            return None
        return "this GPU, older than Ampere, emulates bf16"
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # newer than the oldest torch rnngen runs on
    if capabilities is None:
        return f"torch {torch.__version__} cannot tell whether this CPU computes bf16"
    flags = capabilities()
    # ATEN_CPU_CAPABILITY=avx2 lowers the kernels ATen dispatches to without changing the flags; oneDNN's own limit,
    # ONEDNN_MAX_CPU_ISA, shows only in what it runs.
    allowed = torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2", "ZVECTOR", "VSX")
    hardware = bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    if hardware and allowed and runs_bf16(device, NATIVE_PROBE, "fused"):
        return None
    return "this CPU has no bf16 arithmetic"


@functools.cache
def runs_bf16(device: torch.device, kind: str, impl: str) -> bool:
    """Whether a model of `kind` and `impl` takes a training step under bf16 autocast on `device`: a two-layer model
    of width 8, a few milliseconds, once per process."""
    from rnngen.models import build

    tiny = ModelConfig(kind=kind, impl=impl, vocab_size=8, embed=8, hidden=8, layers=2)
    try:
        with torch.random.fork_rng(devices=[]):  # the probe's weights take no draws from the run's seed
            model = build(tiny).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits, _ = model(torch.zeros((2, 3), dtype=torch.long, device=device))
            logits.float().sum().backward()
    except RuntimeError:  # oneDNN: "could not create a primitive descriptor ..."; CUDA: "... not implemented for"
        return False
    return True


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's arithmetic for a resolved `precision` ("fp32" or "bf16", `resolve`): bf16 autocast (no loss
    scaling needed, unlike fp16; the weights stay float32), or full precision."""
    if precision == FP32:
        return contextlib.nullcontext()
    if precision != BF16:
        raise ValueError(f"autocast takes a resolved precision, fp32 or bf16, not {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16)
