"""Errors a user can act on. The CLI prints their message as one line, without a traceback.

A message names the parameters it is about with `param("lr")`: a Python caller reads `lr`, the
CLI shows the flag it typed (`--lr`), so each reader is told the name they use.
"""

from __future__ import annotations

from collections.abc import Callable

_MARK = "\x1f"  # brackets a parameter's name inside a message; never shown


def param(name: str) -> str:
    """`name`, a parameter of the library call, marked in a message so that the CLI can show its flag."""
    return f"{_MARK}{name}{_MARK}"


def worded(message: str, word: Callable[[str], str]) -> str:
    """`message` with each marked parameter written as `word(name)`."""
    parts = message.split(_MARK)
    return "".join(word(part) if i % 2 else part for i, part in enumerate(parts))


class RnngenError(Exception):
    """A problem the user can fix; the message says what went wrong and how to fix it."""

    def __str__(self) -> str:
        return self.message(lambda name: name)

    def message(self, word: Callable[[str], str]) -> str:
        """The message, with each parameter it names written as `word(name)` (the CLI passes its flags)."""
        return worded(super().__str__(), word)


class CorpusError(RnngenError):
    """The corpus source or a prepared corpus folder cannot be used."""


class CheckpointError(RnngenError):
    """A checkpoint is missing, corrupt, foreign or incompatible."""


class TrainingDiverged(RnngenError):
    """The loss or the gradients became non-finite."""
