"""Names of corpora and runs: one path component of safe characters, checked wherever a name is read.

A name becomes a folder under `corpora/` or `checkpoints/`, so `../../etc`, `.`, `a/b` or a name
longer than a file system allows must never get that far, whether it comes from the command line or
from a meta.json or config.json read back from disk.
"""

from __future__ import annotations

import re

from rnngen.errors import RnngenError

MAX_NAME_CHARS = 100
_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}")


class InvalidName(RnngenError):
    """A corpus or run name that is not one safe path component."""


def is_valid_name(name: object) -> bool:
    """Whether `name` is 1-100 ASCII letters, digits, `-`, `_` or `.`, not starting with `.` or `-` (an option's
    look on a command line); ASCII: a file
    system may store `ö` decomposed, and the name read back would differ from the one typed)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object, what: str = "corpus") -> str:
    """`name` itself when it is valid, else InvalidName with one line saying what is allowed."""
    if is_valid_name(name):
        return name  # type: ignore[return-value]
    shown = repr(name) if not isinstance(name, str) or len(name) <= 40 else repr(name[:40] + "...")
    raise InvalidName(
        f"{what} name {shown} is not allowed: use 1 to {MAX_NAME_CHARS} ASCII letters, digits, '-', '_' "
        f"or '.', not starting with '.' or '-'"
    )
