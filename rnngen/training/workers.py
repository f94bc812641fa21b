"""What a data-parallel worker knows of its place before torch is imported, and how its error reaches the user:
`relaunch` hands the workers a folder (in the environment); a worker writes its one-line error there instead of
printing it, and the launching process shows the first one, once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

ERRORS_ENV = "RNNGEN_WORKER_ERRORS"
FIRST_FAILURE = "first-failure"


def launched() -> bool:
    """True inside a torchrun worker with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (or alone): known from torchrun's environment before the group is joined."""
    return int(os.environ.get("RANK", "0")) == 0


def keep_error(message: str) -> bool:
    """In a worker started by `relaunch`, keep `message` for the launching process to show; False elsewhere
    (the caller prints it)."""
    folder = os.environ.get(ERRORS_ENV)
    if not folder or not launched():
        return False
    path = Path(folder) / f"rank-{os.environ.get('RANK', '0')}"
    path.write_text(message, encoding="utf-8")
    return True


def note_first_failure(rank: int, exit_code: int) -> None:
    """In the launcher: which worker failed first and how (a negative code: the signal that killed it)."""
    folder = os.environ.get(ERRORS_ENV)
    if folder:
        (Path(folder) / FIRST_FAILURE).write_text(f"{rank} {exit_code}", encoding="utf-8")


def first_error(folder: Path, signalled: bool) -> str | None:
    """The error to show from the workers' messages in `folder`: rank 0's after a signal to the launcher (its
    word on the saved run); else that of the worker that failed first (whose failure made torchrun stop the
    others), or what killed it when it could say nothing (the out-of-memory killer's SIGKILL)."""
    written = sorted(folder.glob("rank-*"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    if signalled:
        written = [path for path in written if path.name == "rank-0"] or written
    elif (folder / FIRST_FAILURE).exists():
        rank, code = map(int, (folder / FIRST_FAILURE).read_text(encoding="utf-8").split())
        if (folder / f"rank-{rank}").exists():
            return (folder / f"rank-{rank}").read_text(encoding="utf-8")
        if code < 0:
            return (
                f"error: training process {rank} was killed by {signal.Signals(-code).name} (out of memory? a "
                f"smaller --batch-size or fewer --nproc need less)"
            )
    return written[0].read_text(encoding="utf-8") if written else None
