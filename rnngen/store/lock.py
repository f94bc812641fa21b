"""Locks between processes: one `rnngen train` per run folder, one `rnngen prepare` per corpus name, and no
prepare replacing a corpus that runs train on.

A lock is an `fcntl.flock` on a file that holds the owner's pid. The kernel drops it when the
process exits, however it exits (`kill -9` included), so a lock is never left stale by a crash.
`release()` removes the file; a process that locked a file just removed (the path now names
another file, or none) has locked nothing, and takes the lock again on the current file.

`fcntl` is POSIX-only: it is imported when a lock is taken (training, preparing), never when this
module is, so that completion, evaluation and `rnngen.load` import and run on Windows too.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnngen.errors import RnngenError

WINDOWS = os.name == "nt"


class Busy(RnngenError):
    """Another live process holds the lock."""


class Lock:
    """An exclusive lock on `path`, taken without waiting; `release()` (or the process's exit) gives it up.

    When another process holds it, `error` is raised with `busy_message`, whose `{pid}` names that process.
    A `shared` lock excludes only exclusive ones (many runs read a corpus, a prepare that replaces it waits
    for none); its release leaves the file, which other holders may still hold.
    """

    def __init__(self, path: Path, busy_message: str, error: type[RnngenError] = Busy, shared: bool = False):
        fcntl = _fcntl()
        self.path, self.shared = Path(path), shared
        while True:
            self.file = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's life
            try:
                fcntl.flock(self.file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                self.file.seek(0)
                owner = self.file.read().strip() or "?"
                self.file.close()
                raise error(busy_message.format(pid=owner)) from None
            if self._still_the_file():
                break
            self.file.close()
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def _still_the_file(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if not self.file.closed:
            # While still held (see the module's docstring), and only this lock's file: the path may name
            # another by now (a prepare renamed the folder that held it, and a run locks the new one's).
            if not self.shared and self._still_the_file():
                self.path.unlink(missing_ok=True)
            self.file.close()  # closing the file releases the lock

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _fcntl():
    """The `fcntl` module, or a one-line error where the system has none (Windows)."""
    try:
        import fcntl
    except ImportError:
        raise RnngenError(
            "training and preparing lock their folders with flock, which this system lacks: they run on "
            "Linux and macOS (on Windows, in WSL); complete, chat and evaluate run here"
        ) from None
    return fcntl


def alive(pid: int) -> bool:
    """Whether a process with id `pid` exists (it may belong to another user)."""
    if WINDOWS:
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive_on_windows(pid: int) -> bool:
    # os.kill(pid, 0) on Windows terminates the process rather than asking: ask the kernel for a handle.
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists, and is another user's
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
