"""What a data-parallel worker knows of its place before torch is imported, and how its error reaches the user:
`relaunch` hands the workers a folder (in the environment); a worker writes its one-line error there instead of
printing it, and the launching process shows the first one, once."""

from __future__ import annotations

import os
from pathlib import Path

ERRORS_ENV = "RNNGEN_WORKER_ERRORS"


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


def first_error(folder: Path, signalled: bool) -> str | None:
    """The error to show from the workers' messages in `folder`: rank 0's after a signal to the launcher (its
    word on the saved run), else the one written first (the failure that made torchrun stop the others)."""
    written = sorted(folder.glob("rank-*"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    if signalled:
        written = [path for path in written if path.name == "rank-0"] or written
    return written[0].read_text(encoding="utf-8") if written else None
