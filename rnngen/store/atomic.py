"""Files that are replaced whole or not at all.

The temporary file of a write is `.NAME.PID.RANDOM.tmp` next to its target: a process killed in
the middle of a write leaves it behind, and the pid in its name tells a later process whether
the writer is gone (`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnngen.store.lock import WINDOWS, alive

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to `path`: what the block writes there replaces `path` when it ends
    without an error, so readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600) and the rename would keep that; give it the mode a
        # plain open() gives, so a group sharing checkpoints/ or corpora/ can read it.
        os.chmod(tmp, 0o666 & ~_umask())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if WINDOWS:  # a folder cannot be opened for fsync there; NTFS journals the rename itself
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: Any) -> None:
    """`write_atomic` of `data` as indented JSON."""
    write_atomic(path, json.dumps(data, indent=2).encode())


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files that writers now dead left in `folder` (`.NAME.PID.RANDOM.tmp`); returns them."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        pid = path.name[: -len(TEMP_SUFFIX)].split(".")[-2]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
