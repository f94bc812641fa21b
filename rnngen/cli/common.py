"""What the command modules share: the folders, option types, listings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from rnngen.store.atomic import strict_json


@dataclass(frozen=True)
class Paths:
    """Where corpora and runs live (`--corpora-dir`, `--checkpoints-dir`); the group's context object."""

    corpora: Path
    checkpoints: Path


pass_paths = click.make_pass_decorator(Paths)

SIZE_SUFFIXES = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}


class Count(click.ParamType):
    """An integer that may end in k, M or G: `50M` is 50,000,000."""

    name = "count"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            number = float(text[:-1]) * SIZE_SUFFIXES[text[-1]] if text[-1:] in SIZE_SUFFIXES else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a count like 5000, 200k or 50M", param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a count like 5000, 200k or 50M", param, ctx)
        if number < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return int(number)


def require_folder_of(path: Path, option: str) -> None:
    """A one-line error, before any work is done, when `path` cannot be written: its folder is missing, is a file,
    or may not be written in."""
    import tempfile

    from rnngen.errors import RnngenError

    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise RnngenError(f"{option} {path}: {folder} is a file, not a folder: write elsewhere")
    if not folder.is_dir():
        raise RnngenError(
            f"{option} {path}: the folder {folder} does not exist; create it first "
            f"(mkdir -p {folder}) or write elsewhere"
        )
    try:  # a file made and removed: permissions alone do not tell (root, read-only mounts, /proc)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise RnngenError(f"{option} {path}: cannot write in {folder} ({exc.strerror}): write elsewhere") from exc


def echo_json(data: Any, indent: int | None = None) -> None:
    """Print a command's `--json` output as strict JSON (`rnngen.store.atomic.strict_json`)."""
    click.echo(strict_json(data, indent))


def print_listing(rows: list[dict[str, Any]], as_json: bool, table: Any, empty: str) -> None:
    """Rows as JSON, as a table, or a line saying there are none."""
    from rnngen.cli.display import err, out

    if as_json:
        echo_json(rows, indent=2)
    elif not rows:
        err.print(empty)
    else:
        out.print(table(rows))
