"""Continuous batching: many requests decoding on one model at once, joining and leaving at any step.

A `Scheduler` owns one model and a thread that loops: admit waiting requests while the batch has room, prime one
chunk of a waiting prompt (so that a long prompt never stalls the rows already streaming for more than a chunk's
time), then step every row of the batch at once (`rnngen.generation.decoding.Batch`). Each request's choices are rows
with their own options, generator, stop strings and budget; a row leaves the step it ends, and a cancelled request
(a client that went away) leaves before the next step. Beyond `max_batch` rows, requests wait in a bounded queue;
past it, `submit` refuses with `Busy`.

What each step wrote is handed to the requests' listeners in one call per step (`deliver`), from the scheduler's
thread: a server passes them on to its event loop in one hop, not one per row.

A request's text with a seed is the one `Completer.complete` writes alone: a row is sampled with its own generator
and options, and the model's batched step computes each row as it would alone, except that BLAS may round the last
bit of a lone row's product (a matrix-vector product) apart from a row in a batch of five or more (a matrix-matrix
product); a draw changes only where its uniform number falls within that rounding of a boundary between two tokens.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rnngen.config import SampleConfig
from rnngen.errors import RnngenError
from rnngen.generation.completer import Completer
from rnngen.generation.decoding import Batch, Row, TokenStep, choice_seed
from rnngen.generation.read_state import ReadState

# The rows decoded together and the requests that may wait for room, unless the server is told otherwise.
MAX_BATCH, MAX_QUEUE = 64, 256
# Prompt tokens primed between two steps of the batch: a 2x512 LSTM primes 64 tokens in a few milliseconds.
PRIME_SLICE = 64


class Busy(RnngenError):
    """The scheduler's queue is full: try again shortly."""


class Closing(RnngenError):
    """The scheduler is shutting down: it takes no more requests."""


class TooLarge(RnngenError):
    """A request that even an idle scheduler could not take; `field` names what to make smaller."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Update:
    """What one step wrote for one choice of a request: `text` that may be shown now, the `steps` (tokens) drawn
    since the last update, and `reason` once the choice ended ("max_tokens", "end_of_text" or "stop")."""

    choice: int
    text: str
    steps: list[TokenStep]
    reason: str | None = None
    error: str | None = None  # the decoding failed: the choice ends with this message


@dataclass(eq=False)
class Ticket:
    """A request in the scheduler: its prompt, options, number of choices and how many alternatives to record
    per token. `prompt_tokens` is known once it is primed; `cancel()` takes it out at the next step."""

    prompt: str
    cfg: SampleConfig
    choices: int = 1
    alternatives: int = 0
    prompt_tokens: int = 0
    cancelled: bool = False
    listener: Any = None  # whatever the submitter hears this request's updates through
    _ids: list[int] = field(default_factory=list, repr=False)
    _primed: int = 0
    _memory: ReadState | None = field(default=None, repr=False)

    def cancel(self) -> None:
        self.cancelled = True


Deliver = Callable[[list[tuple[Ticket, Update]]], None]


class Scheduler:
    """Decodes the requests `submit`ted to it on `completer`'s model, `max_batch` rows at most at once, with
    `max_queue` requests at most waiting; every step's updates go to `deliver` (called from its thread)."""

    def __init__(self, completer: Completer, deliver: Deliver, max_batch: int = MAX_BATCH, max_queue: int = MAX_QUEUE):
        if max_batch < 1 or max_queue < 0:
            raise RnngenError(f"max_batch must be >= 1 and max_queue >= 0, got {max_batch} and {max_queue}")
        self.completer, self.deliver, self.max_batch, self.max_queue = completer, deliver, max_batch, max_queue
        self.batch = Batch(completer.lm, completer.tokenizer.vocab_size)
        self.steps = 0  # batched model steps taken
        self.tokens = 0  # tokens written by all rows together
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._priming: Ticket | None = None
        self._rows: dict[int, tuple[Ticket, int, int]] = {}  # id(row) -> its request, choice, steps reported
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="rnngen-scheduler", daemon=True)
        self._thread.start()

    @property
    def rows(self) -> int:
        """Rows decoding now."""
        return len(self.batch)

    @property
    def waiting(self) -> int:
        """Requests waiting for room in the batch (the one being primed included)."""
        return len(self._waiting) + (self._priming is not None)

    def submit(self, tickets: list[Ticket]) -> None:
        """Queue one request's `tickets`, all or none: an error when even an idle server could not take them (more
        rows than the batch, or more waiting than the queue holds), `Busy` when this one cannot take them now."""
        rows = [ticket.choices for ticket in tickets]
        if max(rows) > self.max_batch:
            raise TooLarge(f"n {max(rows)} is more than the {self.max_batch} rows this server decodes at once", "n")
        if _waits(rows, 0, 0, self.max_batch) > self.max_queue:
            raise TooLarge(
                f"{len(tickets)} prompts of n {max(rows)} are more than this server takes at once ({self.max_batch} "
                f"rows decoding, {self.max_queue} requests waiting): send fewer prompts in one request",
                "prompt",
            )
        with self._wake:
            if self._closing:
                raise Closing("the server is shutting down")
            # The rows decoding, being primed and waiting: what comes after them waits its turn.
            priming = self._priming
            promised = len(self.batch) + (priming.choices if priming is not None else 0)
            promised += sum(waiting.choices for waiting in self._waiting)
            waiting = _waits(rows, promised, len(self._waiting), self.max_batch)
            if len(self._waiting) + waiting > self.max_queue:
                raise Busy(f"{self.max_batch} rows decode and {len(self._waiting)} requests wait: try again shortly")
            self._waiting.extend(tickets)
            self._wake.notify()

    def close(self) -> None:
        """Stop taking requests, finish the rows in flight, and end the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not (self._closing or self._waiting or self._priming or len(self.batch)):
                    self._wake.wait()
                if self._closing and not (self._waiting or self._priming or len(self.batch)):
                    return
                if any(ticket.cancelled for ticket in self._waiting):  # a client gone while waiting frees its place
                    self._waiting = collections.deque(ticket for ticket in self._waiting if not ticket.cancelled)
                if self._priming is not None and self._priming.cancelled:
                    self._priming = None
                if self._priming is None and self._waiting:
                    head = self._waiting[0]
                    if head.cancelled or len(self.batch) + head.choices <= self.max_batch:
                        self._priming = self._waiting.popleft()
            updates: list[tuple[Ticket, Update]] = []
            try:
                self._drop_cancelled()
                if self._priming is not None:
                    self._prime_slice(self._priming)
                if len(self.batch):
                    updates = self._step()
            except Exception as exc:  # noqa: BLE001 - every request in flight is told, and the server goes on
                updates = self._fail(f"decoding failed: {type(exc).__name__}: {exc}")
            if updates:
                try:
                    self.deliver(updates)
                except Exception:  # noqa: BLE001 - no one is left to hear (the server's event loop has closed)
                    with self._wake:
                        self._closing = True
                    return

    def _fail(self, message: str) -> list[tuple[Ticket, Update]]:
        """End every row and the prompt being primed with `message`."""
        ended = [(ticket, choice) for ticket, choice, _ in self._rows.values()]
        if self._priming is not None:
            ended += [(self._priming, choice) for choice in range(self._priming.choices)]
        self.batch = Batch(self.completer.lm, self.completer.tokenizer.vocab_size)
        with self._wake:
            self._rows, self._priming = {}, None
        return [(ticket, Update(choice, "", [], error=message)) for ticket, choice in ended]

    def _drop_cancelled(self) -> None:
        gone = [row for row in self.batch.rows if self._rows[id(row)][0].cancelled]
        if gone:
            self.batch.remove(gone)
            for row in gone:
                del self._rows[id(row)]

    def _prime_slice(self, ticket: Ticket) -> None:
        """Prime the next slice of `ticket`'s prompt; once it is all read, its choices join the batch."""
        completer = self.completer
        if not ticket._ids:
            ticket._ids = completer.document(completer.tokenizer.encode(ticket.prompt))
            ticket.prompt_tokens = len(ticket._ids) - len(completer.start)
        chunk = ticket._ids[ticket._primed : ticket._primed + PRIME_SLICE]
        logits, state = completer.lm.prime(chunk, ticket._memory.state if ticket._memory else None)
        ticket._memory, ticket._primed = ReadState(logits, state), ticket._primed + len(chunk)
        if ticket._primed < len(ticket._ids):
            return
        prompt_ids = ticket._ids[len(completer.start) :]
        for choice in range(ticket.choices):
            generator = completer.generator(choice_seed(ticket.cfg.seed, choice))
            row = Row(completer.tokenizer, ticket.cfg, generator, prompt_ids, ticket.alternatives)
            self._rows[id(row)] = (ticket, choice, 0)
            self.batch.add(row, ticket._memory)
        ticket._memory = None
        with self._wake:  # after its rows joined: a failure before leaves every choice to `_fail`
            self._priming = None

    def _step(self) -> list[tuple[Ticket, Update]]:
        written = self.batch.step()
        self.steps += 1
        self.tokens += len(written)
        updates = []
        for row, text in written:
            ticket, choice, reported = self._rows[id(row)]
            # The token drawn this step, unless it was the end of text (a row's steps hold only tokens of its text).
            updates.append((ticket, Update(choice, text, row.steps[reported:], row.reason)))
            if row.finished:
                del self._rows[id(row)]
            else:
                self._rows[id(row)] = (ticket, choice, len(row.steps))
        return updates


def _waits(rows: list[int], promised: int, queued: int, capacity: int) -> int:
    """How many of a request's tickets (of `rows` rows each) would wait in the queue behind `queued` requests, with
    `promised` of the batch's `capacity` rows taken: a ticket starts at once only while nothing waits before it."""
    waits = 0
    for count in rows:
        if queued + waits == 0 and promised + count <= capacity:
            promised += count
        else:
            waits += 1
    return waits
