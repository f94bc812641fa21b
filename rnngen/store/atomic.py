"""Files that are replaced whole or not at all.

The temporary file of a write is `.NAME.PID.RANDOM.tmp` next to its target: a process killed in
the middle of a write leaves it behind, and the pid in its name tells a later process whether
the writer is gone (`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import json
import math
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
    """`write_atomic` of `data` as indented JSON (`strict_json`)."""
    write_atomic(path, strict_json(data, indent=2).encode())


def strict_json(data: Any, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """`data` as JSON every reader parses, the only way rnngen writes JSON: a number that is NaN or infinite is
    written as null (`json.dumps` would write a bare `NaN` or `Infinity`, which JSON.parse and other strict readers
    refuse), so a reader of what rnngen wrote takes null where a figure has no finite value."""
    return json.dumps(_finite(data), indent=indent, allow_nan=False, ensure_ascii=ensure_ascii)


def _finite(data: Any) -> Any:
    """`data` with every float that is NaN or infinite replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files that writers now dead left in `folder` (`.NAME.PID.RANDOM.tmp`); returns them."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        pid = path.name[: -len(TEMP_SUFFIX)].split(".")[-2]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
