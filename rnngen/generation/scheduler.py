"""Continuous batching: many requests decoding on one model at once, joining and leaving at any step.

A `Scheduler` owns one model and a thread that loops: admit waiting requests while the batch has room, read one
slice of a waiting prompt, then step every row of the batch at once (`rnngen.generation.decoding.Batch`). Reading
takes at most `PRIME_SHARE` of the time while rows decode, so that a long prompt slows the streams in flight by a
third at most instead of stalling them. Each request's choices are rows with their own options, generator, stop
strings and budget; a row leaves the step it ends, and a cancelled request (a client that went away) leaves before
the next step. Beyond `max_batch` rows, requests wait in a bounded queue; past it, `submit` refuses with `Busy`.
A failure while reading one prompt ends that request alone; one in a batched step ends the rows of that step.

Prompts are read by `rnngen.generation.reading` from the longest prefix the scheduler's `StateCache` holds, and
what each request read is kept there: the state before its prompt's last token, and once a choice ends, the state
before the last token of its prompt and text together (read again the way a prompt is read, when nothing else
waits). The next turn of a conversation, or another question about the same document, then reads only what is new.

What each step wrote is handed to the requests' listeners in one call per step (`deliver`), from the scheduler's
thread: a server passes them on to its event loop in one hop, not one per row.

A request's text with a seed is the one `Completer.complete` writes alone, whether its prompt came from the cache
or not: a prompt is read the same way to the last bit whatever was read before (`NumpyLM.read`), a row is sampled
with its own generator and options, and the model's batched step computes each row as it would alone, except that
BLAS may round the last bit of a lone row's product (a matrix-vector product) apart from a row in a batch of five or
more (a matrix-matrix product); a draw changes only where its uniform number falls within that rounding of a
boundary between two tokens.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rnngen.config import SampleConfig
from rnngen.errors import RnngenError
from rnngen.generation.arrays import PRIME_BLOCK
from rnngen.generation.completer import Completer
from rnngen.generation.decoding import Batch, Row, TokenStep, choice_seed
from rnngen.generation.limits import MAX_BATCH, MAX_PROMPT_TOKENS, MAX_QUEUE, STATE_CACHE_MB
from rnngen.generation.reading import Reading
from rnngen.generation.state_cache import StateCache

# The most of the scheduler's time reading prompts takes while rows decode: the streams keep two thirds.
PRIME_SHARE = 1 / 3
# Texts (a prompt and its completion) waiting to be read into the cache; the oldest are dropped past it.
AFTER_TEXTS = 64


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
    per token. `prompt_tokens` is known once it is submitted, `cached_tokens` (those not read again) once its reading
    starts; `cancel()` takes it out at the next step."""

    prompt: str
    cfg: SampleConfig
    choices: int = 1
    alternatives: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cancelled: bool = False
    listener: Any = None  # whatever the submitter hears this request's updates through
    submitted: float = 0.0  # time.monotonic() when it was submitted
    _ids: list[int] = field(default_factory=list, repr=False)
    _reading: Reading | None = field(default=None, repr=False)

    def cancel(self) -> None:
        self.cancelled = True


Deliver = Callable[[list[tuple[Ticket, Update]]], None]


class Scheduler:
    """Decodes the requests `submit`ted to it on `completer`'s model, `max_batch` rows at most at once, with
    `max_queue` requests at most waiting and `max_prompt_tokens` prompt tokens at most a request; every step's
    updates go to `deliver` (called from its thread). `cache_bytes` bound the states kept (0 keeps none)."""

    def __init__(
        self,
        completer: Completer,
        deliver: Deliver,
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
        cache_bytes: int = STATE_CACHE_MB * 2**20,
        max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    ):
        if max_batch < 1 or max_queue < 0 or cache_bytes < 0 or max_prompt_tokens < 1:
            raise RnngenError(
                f"max_batch and max_prompt_tokens must be >= 1, max_queue and cache_bytes >= 0, got {max_batch}, "
                f"{max_prompt_tokens}, {max_queue} and {cache_bytes}"
            )
        self.completer, self.deliver, self.max_batch, self.max_queue = completer, deliver, max_batch, max_queue
        self.max_prompt_tokens = max_prompt_tokens
        self.cache = StateCache(cache_bytes)
        self.batch = Batch(completer.lm, completer.tokenizer.vocab_size)
        self.steps = 0  # batched model steps taken
        self.tokens = 0  # tokens written by all rows together
        self.prompt_tokens = 0  # prompt tokens of the requests read so far
        self.cached_tokens = 0  # of those, the ones resumed from the cache instead of read
        self.cache_hits = 0  # prompts that resumed from the cache
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._priming: Ticket | None = None
        self._rows: dict[int, tuple[Ticket, int, int]] = {}  # id(row) -> its request, choice, steps reported
        self._after: collections.deque[str] = collections.deque(maxlen=AFTER_TEXTS)  # texts to keep the state of
        self._after_reading: Reading | None = None
        self._after_text = ""  # the text `_after_reading` reads
        self._reading_debt = 0.0  # seconds of steps owed to the rows before the next slice (`PRIME_SHARE`)
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
        rows than the batch, more waiting than the queue holds, more prompt tokens than `max_prompt_tokens`),
        `Busy` when this one cannot take them now."""
        rows = [ticket.choices for ticket in tickets]
        if max(rows) > self.max_batch:
            raise TooLarge(f"n {max(rows)} is more than the {self.max_batch} rows this server decodes at once", "n")
        if _waits(rows, 0, 0, self.max_batch) > self.max_queue:
            raise TooLarge(
                f"{len(tickets)} prompts of n {max(rows)} are more than this server takes at once ({self.max_batch} "
                f"rows decoding, {self.max_queue} requests waiting): send fewer prompts in one request",
                "prompt",
            )
        completer = self.completer
        for ticket in tickets:
            ticket._ids = completer.document(completer.tokenizer.encode(ticket.prompt))
            ticket.prompt_tokens = len(ticket._ids) - len(completer.start)
        total = sum(ticket.prompt_tokens for ticket in tickets)
        if total > self.max_prompt_tokens:
            raise TooLarge(
                f"the prompt is {total:,} tokens, more than the {self.max_prompt_tokens:,} this server reads for one "
                f"request (--max-prompt-tokens): send a shorter one",
                "prompt",
            )
        now = time.monotonic()
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
            for ticket in tickets:
                ticket.submitted = now
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
                while not (self._closing or self._waiting or self._priming or len(self.batch) or self.reading_after):
                    self._wake.wait()
                if self._closing:
                    self._after.clear()
                    self._after_reading = None
                    if not (self._waiting or self._priming or len(self.batch)):
                        return
                if any(ticket.cancelled for ticket in self._waiting):  # a client gone while waiting frees its place
                    self._waiting = collections.deque(ticket for ticket in self._waiting if not ticket.cancelled)
                if self._priming is not None and self._priming.cancelled:
                    self._priming = None
                if self._priming is None and self._waiting:
                    head = self._waiting[0]
                    if len(self.batch) + head.choices <= self.max_batch:
                        self._priming = self._waiting.popleft()
            updates: list[tuple[Ticket, Update]] = []
            self._drop_cancelled()
            if not len(self.batch):
                self._reading_debt = 0.0
            # A text kept for later (a prompt and its reply) is read again only while no row decodes: a request that
            # starts with it reads it first itself (`_reads_first`).
            idle = not len(self.batch)
            if self._reading_debt <= 0 and (self._priming is not None or (self.reading_after and idle)):
                started = time.perf_counter()
                if self._priming is not None and not self._reads_first(self._priming):
                    updates += self._prime_slice(self._priming)
                else:
                    self._read_after()
                if len(self.batch):
                    self._reading_debt += (time.perf_counter() - started) * (1 - PRIME_SHARE) / PRIME_SHARE
            if len(self.batch):
                started = time.perf_counter()
                try:
                    updates += self._step()
                except Exception as exc:  # noqa: BLE001 - the rows of this step are told, and the server goes on
                    updates += self._fail(f"decoding failed: {type(exc).__name__}: {exc}")
                self._reading_debt = max(0.0, self._reading_debt - (time.perf_counter() - started))
            if updates:
                try:
                    self.deliver(updates)
                except Exception:  # noqa: BLE001 - no one is left to hear (the server's event loop has closed)
                    with self._wake:
                        self._closing = True
                    return

    @property
    def reading_after(self) -> bool:
        """Whether a finished text (a prompt and its completion) waits to be read into the cache."""
        return bool(self._after) or self._after_reading is not None

    def _fail(self, message: str) -> list[tuple[Ticket, Update]]:
        """End every row of the batch with `message`."""
        ended = [(ticket, choice) for ticket, choice, _ in self._rows.values()]
        self.batch = Batch(self.completer.lm, self.completer.tokenizer.vocab_size)
        self._rows = {}
        return [(ticket, Update(choice, "", [], error=message)) for ticket, choice in ended]

    def _drop_cancelled(self) -> None:
        gone = [row for row in self.batch.rows if self._rows[id(row)][0].cancelled]
        if gone:
            self.batch.remove(gone)
            for row in gone:
                del self._rows[id(row)]

    def _prime_slice(self, ticket: Ticket) -> list[tuple[Ticket, Update]]:
        """Read the next slice of `ticket`'s prompt; once it is all read, its choices join the batch. A failure ends
        this request alone: its choices' updates say why."""
        completer, joined = self.completer, []
        try:
            if ticket._reading is None:
                ticket._reading = completer.reading_ids(ticket._ids, self.cache)
                ticket.cached_tokens = max(0, ticket._reading.cached - len(completer.start))
                self.prompt_tokens += ticket.prompt_tokens
                self.cached_tokens += ticket.cached_tokens
                self.cache_hits += ticket._reading.cached > 0
            ticket._reading.advance(PRIME_BLOCK)
            if not ticket._reading.done:
                return []
            prompt_ids = ticket._ids[len(completer.start) :]
            for choice in range(ticket.choices):
                generator = completer.generator(choice_seed(ticket.cfg.seed, choice))
                row = Row(completer.tokenizer, ticket.cfg, generator, prompt_ids, ticket.alternatives)
                self.batch.add(row, ticket._reading.memory)
                self._rows[id(row)] = (ticket, choice, 0)
                joined.append(row)
        except Exception as exc:  # noqa: BLE001 - this request is told, the others go on
            self.batch.remove(joined)
            for row in joined:
                self._rows.pop(id(row), None)
            message = f"reading the prompt failed: {type(exc).__name__}: {exc}"
            updates = [(ticket, Update(choice, "", [], error=message)) for choice in range(ticket.choices)]
        else:
            updates = []
        ticket._reading = None
        with self._wake:
            self._priming = None
        return updates

    def _reads_first(self, ticket: Ticket) -> bool:
        """Whether a finished text that `ticket`'s prompt starts with (the turns before a chat's next one) is still to
        be read into the cache: it is read first, as the request would read it anyway, and the request then resumes
        after it."""
        if ticket._reading is not None:
            return False
        if self._after_reading is not None:
            return ticket.prompt.startswith(self._after_text)
        for text in self._after:
            if ticket.prompt.startswith(text):
                self._after.remove(text)
                self._after.appendleft(text)
                return True
        return False

    def _read_after(self) -> None:
        """Read the next slice of a finished text (a prompt and its completion) into the cache."""
        try:
            if self._after_reading is None:
                self._after_text = self._after.popleft()
                self._after_reading = self.completer.reading(self._after_text, self.cache)
            self._after_reading.advance(PRIME_BLOCK)
        except Exception:  # noqa: BLE001 - a state not kept is only a later request read in full
            self._after_reading = None
            return
        if self._after_reading.done:
            self._after_reading = None

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
                if self.cache.max_bytes and not ticket.cancelled:
                    self._after.append(ticket.prompt + row.text)
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
