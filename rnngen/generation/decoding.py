"""The one decoding core: completions in flight are rows of a batch, stepped together.

A `Row` is one completion in flight: its sampling options, its random generator, its prompt's tokens (for the
repetition penalty), its streaming decoder, the hold-back of its stop strings, its budget and, once it ends, why.
A `Batch` holds the rows that decode together and the model's state for all of them ([layers, rows, hidden]): each
`step()` filters and draws the next token of every row in a few array operations (`rnngen.generation.sampling`),
feeds those tokens through the model in one batched step, and lets each row turn its token into text. A row joins
with the state its prompt left (primed on its own) and leaves the step it ends, with the state after all its text.

A recurrent model's whole memory of a row is that fixed-size state: rows join and leave at any step, and memory does
not grow with the length of the text. `rnngen complete`, `chat`, `Model.complete`/`stream` decode a batch of one row
(`Completer.complete`); `rnngen serve` steps a batch of many (`rnngen.generation.scheduler`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rnngen.config import SampleConfig
from rnngen.data.tokenizer import Tokenizer
from rnngen.generation.language_model import LanguageModel
from rnngen.generation.read_state import ReadState
from rnngen.generation.sampling import RowOptions, draw_rows, filter_rows
from rnngen.models.state import join_rows, select_rows


def choice_seed(seed: int | None, choice: int) -> int | None:
    """The seed of the `choice`-th completion of a request seeded with `seed` (`--num-samples`, the server's `n`):
    seed + choice, within the 64 bits both backends take; None (the OS's entropy) stays None."""
    return None if seed is None else (seed + choice) % 2**64


@dataclass
class TokenStep:
    """One generated token: its text, the probability the model gave it, and (when asked) the
    most likely alternatives at that step."""

    token: int
    text: str
    prob: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)


def first_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Where the first of the `stops` strings begins in `text` (searching from `start`), or None: where a
    completion, or a beam, ends."""
    hits = [i for i in (text.find(stop, start) for stop in stops) if i >= 0]
    return min(hits) if hits else None


class Row:
    """One completion in flight: what it has written (`steps`, `text`) and, once it ended, `reason` and the model's
    `memory` after all its text (to continue from)."""

    def __init__(
        self, tokenizer: Tokenizer, cfg: SampleConfig, generator: Any, seen: Sequence[int] = (), alternatives: int = 0
    ):
        self.tokenizer, self.cfg, self.generator, self.alternatives = tokenizer, cfg, generator, alternatives
        self.seen = list(seen)  # the prompt's tokens, which the repetition penalty counts with those it writes
        self.steps: list[TokenStep] = []
        self.reason: str | None = None
        self.memory: ReadState | None = None
        self._decoder = tokenizer.stream_decoder()
        self._holdback = max((len(stop) for stop in cfg.stop), default=1) - 1
        self._text, self._emitted = "", 0

    @property
    def finished(self) -> bool:
        return self.reason is not None

    @property
    def text(self) -> str:
        """All the text written so far (some perhaps held back from `accept`'s pieces), without a stop string that
        ended the row."""
        return self._text

    def accept(self, step: TokenStep) -> str:
        """Take the token the batch drew for this row; the text that may be shown now ("" while a piece could still
        be the start of a stop string). Sets `reason` when the row ends."""
        if step.token == self.tokenizer.eot_id:
            self.reason = "end_of_text"
            return self._rest()
        self.steps.append(step)
        step.text = self._decoder.push(step.token)
        self._text += step.text
        found = first_stop(self._text, self.cfg.stop, max(0, self._emitted - self._holdback))
        if found is not None:
            self.reason = "stop"
            self._text = self._text[:found]
            return self._rest()
        if len(self.steps) == self.cfg.max_tokens:
            self.reason = "max_tokens"
            return self._rest()
        # Hold back what could be the start of a stop string until it is known not to be one.
        if len(self._text) - self._holdback > self._emitted:
            piece = self._text[self._emitted : len(self._text) - self._holdback]
            self._emitted = len(self._text) - self._holdback
            return piece
        return ""

    def _rest(self) -> str:
        if self.reason != "stop":
            self._text += self._decoder.flush()
        piece, self._emitted = self._text[self._emitted :], len(self._text)
        return piece


class Batch:
    """Rows decoding together on one model: `add` a row with the state its prompt left, `step` them all."""

    def __init__(self, lm: LanguageModel, vocab_size: int):
        self.lm, self.vocab_size = lm, vocab_size
        self.rows: list[Row] = []
        self._logits: Any = None  # [rows, vocab]: each row's next-token logits
        self._state: Any = None  # the model's state, rows in `self.rows`' order
        self._seen: Any = None  # [rows, vocab] flags: the tokens each row has seen
        self._options: RowOptions | None = None  # the rows' options, rebuilt when rows join or leave

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Row, start: ReadState) -> None:
        """Let `row` decode from `start` (the model after its prompt) from the next step on."""
        ops = self.lm.ops
        seen = self.lm.flags(self.vocab_size)
        if row.seen:
            seen[ops.index(row.seen, seen)] = True
        logits, seen = start.logits[None], seen[None]
        if self.rows:
            logits = ops.concat([self._logits, logits])
            seen = ops.concat([self._seen, seen])
        self._logits, self._seen = logits, seen
        self._state = join_rows(self._state, start.state) if self.rows else start.state
        self.rows.append(row)
        self._options = None

    def remove(self, rows: Sequence[Row]) -> None:
        """Take `rows` out of the batch at once (a finished or abandoned completion)."""
        gone = {id(row) for row in rows}
        keep = [i for i, row in enumerate(self.rows) if id(row) not in gone]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        index = self.lm.ops.index(keep, self._logits)
        self._logits, self._seen = self._logits[index], self._seen[index]
        self._state = select_rows(self._state, keep) if keep else None
        self._options = None

    def step(self) -> list[tuple[Row, str]]:
        """Draw every row's next token, feed them all through the model at once, and let each row write its text;
        rows that ended leave the batch with their `memory`. Returns each row with the text it may show now."""
        ops, rows = self.lm.ops, self.rows
        if self._options is None:
            self._options = RowOptions.of([row.cfg for row in rows])
        filtered = filter_rows(self._logits, self._options, self._seen)
        tokens = draw_rows(filtered, self._options, [row.generator for row in rows])
        probs = ops.softmax(self._logits)  # the model's own distribution, before any filter
        chosen = ops.host(ops.take(probs, ops.index(tokens, probs)[:, None])[:, 0]).tolist()
        steps = [TokenStep(token, "", prob) for token, prob in zip(tokens, chosen)]
        for i, row in enumerate(rows):
            if row.alternatives:
                values, indices = ops.topk(probs[i], row.alternatives)
                steps[i].alternatives = [
                    (row.tokenizer.decode([index]), value) for value, index in zip(values.tolist(), indices.tolist())
                ]
        # Every token is fed, those that end a row included, so that a row's memory follows all its text.
        ids = self.lm.ids(tokens)
        self._logits, self._state = self.lm.step(ids, self._state)
        self._seen[ops.positions(len(rows), self._seen)[0], ids] = True
        written = [(row, row.accept(step)) for row, step in zip(rows, steps)]
        ended = [i for i, row in enumerate(rows) if row.finished]
        for i in ended:
            rows[i].memory = self.read_state(i)
        self.remove([rows[i] for i in ended])
        return written

    def read_state(self, i: int) -> ReadState:
        """The model after row `i`'s text so far: its next-token logits and its own state (a copy)."""
        return ReadState(self._logits[i], select_rows(self._state, [i]))
