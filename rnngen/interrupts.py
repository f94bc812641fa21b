"""SIGTERM (a `kill`, a job scheduler) stops a command as Ctrl-C does: `Terminated` unwinds it, so every
temporary file and folder on its way is removed, and the CLI exits 143, as a process killed by SIGTERM does."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM while `sigterm_raises()` is active."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` while the block runs; the previous handler comes back after it.
    Signals reach only the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
