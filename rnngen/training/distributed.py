"""Data-parallel training on PyTorch's own engine: torchrun + DistributedDataParallel.

`torchrun --nproc_per_node N -m rnngen train ...` (or `rnngen train --nproc N`) starts N processes;
each calls `setup(device)`, which joins the process group that torchrun describes in the environment
(NCCL when training on GPUs, gloo on CPUs). Outside torchrun every function here is a no-op for one process.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rnngen.errors import RnngenError
from rnngen.models import device as devices
from rnngen.training.workers import ERRORS_ENV, first_error, launched


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and reports progress."""
        return self.rank == 0


def relaunch(processes: int, args: list[str]) -> tuple[int, str | None]:
    """Run `rnngen ARGS` (without its --nproc) under torchrun with `processes` workers; their exit status and
    the one-line error to show, if any (the first worker's to fail; torchrun's own output is hidden).

    torchrun runs in its own session, so a Ctrl-C at the terminal reaches it once, through this
    process: SIGINT and SIGTERM are passed on (a closed terminal's SIGHUP as SIGTERM), torchrun passes
    them to the workers, which save `last` and stop, and this process waits for all of them and
    returns 128 + the signal's number, as a single process exits.
    """
    import signal
    import subprocess
    import sys
    import tempfile

    args = list(args)
    at = next(i for i, arg in enumerate(args) if arg == "--nproc" or arg.startswith("--nproc="))
    del args[at : at + (1 if "=" in args[at] else 2)]
    command = [
        sys.executable,
        "-m",
        "rnngen.training.torchrun",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "rnngen",
        *args,
    ]
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signal.SIGTERM if signum == signal.SIGHUP else signum)
        process.send_signal(received[-1])

    with tempfile.TemporaryDirectory(prefix="rnngen-workers-") as errors:
        process = subprocess.Popen(command, start_new_session=True, env={**os.environ, ERRORS_ENV: errors})
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        code = process.wait()
        message = first_error(Path(errors), bool(received))
    return (128 + received[0] if received and code != 0 else code), message


def backend_for(device: str) -> str:
    """The process-group backend for training on `device` (a `--device` choice): NCCL reduces CUDA
    tensors only, so CPU training uses gloo even where a GPU is visible."""
    return "nccl" if devices.pick(device).type == "cuda" else "gloo"


def check_gpus(processes: int, device: str) -> None:
    """Refuse more processes per machine than it has GPUs when training on CUDA: NCCL needs one GPU per
    process, and a rank without one would fail deep inside CUDA instead of saying so."""
    gpus = torch.cuda.device_count()
    if backend_for(device) == "nccl" and processes > gpus:
        raise RnngenError(
            f"--nproc {processes}: this machine has {gpus} GPU{'s' * (gpus != 1)}, and each process "
            f"needs its own; use --nproc {gpus}, or --device cpu for CPU processes"
        )


def setup(device: str = "auto") -> World:
    """Join the process group torchrun set up, for training on `device`; a single `World()` outside torchrun."""
    if not launched():
        return World()
    if not dist.is_initialized():
        backend = backend_for(device)
        if backend == "nccl":
            check_gpus(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), device)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(finished: bool = True) -> None:
    """Leave the process group; after a normal end, wait for every rank first (gloo aborts a process
    that leaves while another still talks to it)."""
    if dist.is_initialized():
        # A DDP wrapper left in a reference cycle would otherwise be freed at interpreter exit, after
        # its group is gone, and its reducer's destructor aborts the process (seen: SIGABRT on rank 1).
        gc.collect()
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a run name, a decision)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all ranks."""
    if not dist.is_initialized():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (a stop request reaching one process)."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def total(value: float, device: torch.device) -> float:
    """The sum of `value` over all ranks, added in float64 (on the GPU under NCCL, else on the CPU)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return tensor.item()


def from_main(value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank, as float64 (on the GPU under NCCL, else on the CPU): one clock for all."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.broadcast(tensor, src=0)
    return tensor.item()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    objects: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's tensor along dim 1 (the batch rows of a hidden state)."""
    if not dist.is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, 1)
