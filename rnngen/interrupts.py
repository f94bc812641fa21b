"""SIGTERM (a `kill`, a job scheduler) and SIGHUP (a closed terminal) stop a command as Ctrl-C does: `Terminated`
unwinds it, so every temporary file and folder on its way is removed, and the CLI exits 128 + the signal's number,
as a process killed by it does."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (or SIGHUP, a closed terminal) while `sigterm_raises()` is active."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum)
        self.exit_code = 128 + signum


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` while the block runs; the previous handlers come back after it.
    Signals reach only the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
