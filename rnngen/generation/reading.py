"""Reading a document into a model's state: the one priming path of completion, chat, the Python API and the server.

A `Reading` reads a document's token ids (the start of a document first) from the longest prefix a state is already
known for: a `StateCache`'s entry, or a `TextState` the caller holds. It reads in one pass (`rnngen complete`) or in
slices (the server's scheduler, between two batched steps), and every way gives the same bits: the model computes
each token by its place in the document alone (`LanguageModel.read`).

On the way it keeps one state, in the cache and in the `TextState` it gives: before the text's last word
(`keep_point`). Text that follows may spell the last word otherwise ("the mod" is `the`, ` `, `m`, `o`, `d` alone and
`the`, ` model` with "el" after it), never what comes before it: the tokenizer splits text before each space and
around each newline and spells the pieces apart. A longer text (the next turn of a chat, a question after a document)
then finds that state by its own tokens and reads only its last word and what is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rnngen.generation.language_model import LanguageModel
from rnngen.generation.read_state import ReadState, TextState
from rnngen.generation.state_cache import StateCache


def keep_point(ids: Sequence[int], word_starts: np.ndarray, newline: int, start: int, exact_every: int) -> int:
    """Where a read of document `ids` (`start` of them the document's start) keeps its state: at the last token that
    begins a word (`word_starts[id]`: its piece begins with a space) or follows a newline, before the last token where
    there is none, rounded down to a multiple of `exact_every` (the model's exact positions); 0 (keep none) where that
    leaves no more than the document's start."""
    tokens = np.asarray(ids[start:], dtype=np.int64)
    splits = word_starts[tokens[1:]] | (tokens[:-1] == newline)
    found = np.flatnonzero(splits)
    point = (start + 1 + int(found[-1]) if len(found) else len(ids) - 1) // exact_every * exact_every
    return point if point > start else 0


class Reading:
    """A document's `ids` being read by `lm`, resuming from the longest prefix `cache` or `after` holds a state for,
    and keeping the state after the first `keep_at` ids there (and in `kept`).

    `cached` ids were not read again; `advance` reads on; `memory` is the model after all the ids once `done`.
    """

    def __init__(
        self,
        lm: LanguageModel,
        ids: Sequence[int],
        keep_at: int,
        cache: StateCache | None = None,
        after: TextState | None = None,
    ):
        self.lm, self.ids, self.cache = lm, list(ids), cache
        self.memory: ReadState | None = None
        self.keep_at = keep_at  # where the state is kept (`keep_point`)
        self.kept: tuple[int, Any] = (0, None)
        if after is not None and after.model is not lm:  # another model's state: read from the start
            after = None
        if after is not None and tuple(self.ids) == after.ids:  # the same text: nothing to read
            self.cached = self.position = len(self.ids)
            self.memory, self.kept, self._state = after.memory, after.resume, after.memory.state
            return
        start, state = cache.longest(self.ids) if cache is not None else (0, None)
        if after is not None:
            length, resumed = after.resume
            if start < length < len(self.ids) and tuple(self.ids[:length]) == after.ids[:length]:
                start, state = length, resumed
        self.cached = self.position = start
        self._state = state
        if start == self.keep_at and start:
            self.kept = (start, state)

    @property
    def done(self) -> bool:
        return self.memory is not None

    def advance(self, slice_tokens: int | None = None) -> None:
        """Read on: to the end, or with `slice_tokens` to the next multiple of it from the document's start (a slice
        of a long prompt, between two steps of the batch)."""
        if self.done:
            return
        end = len(self.ids)
        if slice_tokens is not None:
            end = min(end, (self.position // slice_tokens + 1) * slice_tokens)
        keep = self.keep_at - self.position if self.position < self.keep_at <= end else None
        logits, state, kept = self.lm.read(self.ids[self.position : end], self._state, self.position, keep)
        if kept is not None:
            self.kept = (self.keep_at, kept)
            if self.cache is not None:
                self.cache.keep(self.ids[: self.keep_at], kept)
        self.position, self._state = end, state
        if end == len(self.ids):
            self.memory = ReadState(logits, state)

    def text_state(self, text: str) -> TextState:
        """What was read, as a `TextState` of `text` (the text of the ids, read to the end first)."""
        self.advance()
        return TextState(text, tuple(self.ids), self.memory, self.kept, self.lm)
