"""Stopping on a signal: SIGINT, SIGTERM and SIGHUP (a closed terminal) ask the loop to save `last` and stop
between steps."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from rnngen.errors import RnngenError


class Interrupted(RnngenError):
    """Training was stopped by a signal after saving `last`; `exit_code` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopFlag:
    """Set by a signal handler; the loop checks it between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """SIGINT, SIGTERM and SIGHUP ask the loop to save and stop; a SIGINT after that exits at once.

    Only a person presses Ctrl-C twice; a repeated SIGTERM or SIGHUP is the same request again (Slurm signals
    every task and torchrun passes its own SIGTERM on, so a worker often gets two), and the save goes
    on. Exiting at once is safe: every checkpoint is written atomically, so the newest complete one
    stays loadable whatever moment the process dies.
    """
    flag = StopFlag()

    def handler(signum: int, frame: Any) -> None:
        if flag.signal is None:
            flag.signal = signum
        elif signum == signal.SIGINT:
            os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
