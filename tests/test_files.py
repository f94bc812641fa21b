"""Files rnngen writes: whole or not at all, and readable by whoever a plain open() would let read them."""

from __future__ import annotations

import os
import stat

from rnngen.store.atomic import write_atomic


def test_written_files_take_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "shared.json", b"{}")
        os.umask(0o007)
        write_atomic(tmp_path / "group.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "group.json").stat().st_mode) == 0o660
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
