"""How many CPU threads training uses: the cores that are free when it starts, not all of them.

PyTorch's intra-op threads wait for each other at every operation, spinning: when another process
holds one of the cores, every operation waits for the thread that shares that core, and training
slows far more than the lost core explains. Training on the free cores alone avoids that wait.
The measurements are in docs/performance.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

SAMPLE_SECONDS = 0.1  # long enough for the kernel's tick counters to say which cores are in use


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many cores other processes keep busy, from /proc/stat over `seconds` (this process sleeps
    meanwhile); None where /proc/stat cannot be read."""
    try:
        first = _cpu_ticks()
        time.sleep(seconds)
        second = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return None
    total = second[0] - first[0]
    if total <= 0:
        return None
    return (os.cpu_count() or 1) * (1.0 - (second[1] - first[1]) / total)


def _cpu_ticks() -> tuple[int, int]:
    """(all ticks, idle ticks) of every core together, from the first line of /proc/stat."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return sum(fields), idle


def free_threads(available: int, busy: float | None) -> int:
    """The threads to train with on `available` threads when `busy` cores are taken by others (rounded,
    so a core taken for a moment does not count; at least one)."""
    if busy is None:
        return available
    return max(1, min(available, (os.cpu_count() or 1) - round(busy)))


@contextlib.contextmanager
def on_free_cores() -> Iterator[str | None]:
    """Train on the free cores inside the block, with a line saying so when some were taken (else None);
    torch's thread count is restored after it. An explicit OMP_NUM_THREADS is the user's choice and is kept."""
    import torch

    available = torch.get_num_threads()
    threads = available if "OMP_NUM_THREADS" in os.environ else free_threads(available, busy_cores())
    if threads == available:
        yield None
        return
    torch.set_num_threads(threads)
    try:
        yield (
            f"other processes keep {available - threads} of this machine's cores busy: training on {threads} "
            f"thread{'s' * (threads != 1)} instead of {available} (set OMP_NUM_THREADS to choose)"
        )
    finally:
        torch.set_num_threads(available)
