"""`rnngen serve` under concurrent streaming clients: how much more a batched server writes than one request at a
time, and how much of the bare batched model step's speed the server keeps, at equal wall-clock time on this machine.

The model is the `cpu` preset's (a 2x512 LSTM) over the pydocs corpus's 4,096-piece unigram vocabulary, with random
weights (speed does not depend on what it learnt) and the end-of-text id made impossible (`endless_model`: its head
bias is -1e9), so that every request writes exactly its `max_tokens`. On the CPU it runs in NumPy; where a GPU is at
hand the same table is measured again with the torch model on it.

The server is the real application (`create_app`) under uvicorn in a thread of this process, on a loopback port. The
clients run in a second process, as real clients do, so that reading their streams does not take this process's
GIL; on a 2-core machine they still take CPU time, so they read the lean way (raw HTTP chunks, tokens counted
without parsing JSON: about a sixth of a core at 64 streams). Each of N clients holds one connection and POSTs
/v1/completions with stream=true, a short fixed prompt, `max_tokens` T and logprobs=0 (whose `logprobs.tokens` lists
the tokens a chunk carries), one request after another for a fixed time. Measured from when the batch is full (the
N-th stream's first token; with one request at a time, the first one's) to the deadline:

- tokens/s: every token that arrived in that window, over its length;
- the time between two tokens of one stream: each token's arrival minus the previous token's; the tokens of one
  chunk arrive together (0 after the first), so a chunk's wait counts once, whole, and the p99 is of all tokens;
- resident memory: the most this process held (/proc/self/statm) while N streams were active.

References, in the same run: (a) the same app with max_batch=1, one request at a time and the others queued (what
wrapping `model.complete` in FastAPI gives); (b) the bare batched step at batch N, with no server: the model's step
(embedding, both layers, the head) and one vectorised draw (`filter_rows` + `draw_rows`, the default sampling
options a request without options gets), N tokens a step. The time to the first token of a 200-token prompt is
measured while 16 clients stream: one probe after another, each with max_tokens 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from rnngen.config import SampleConfig
from rnngen.generation.completer import Completer
from rnngen.generation.sampling import RowOptions, draw_rows, filter_rows
from rnngen.models.state import select_rows

CLIENTS, QUICK_CLIENTS = (1, 16, 64), (1, 4)  # concurrent streaming clients
TOKENS, QUICK_TOKENS = 256, 16  # max_tokens of each request
SECONDS, QUICK_SECONDS = 10.0, 1.0  # each measurement's wall-clock time
PROBES, QUICK_PROBES = 100, 3  # 200-token prompts sent for the time to the first token
MODEL_ID = "bench"
PROMPT = "The recurrent model reads"
PROBE_TEXT = "A recurrent network reads its prompt one token at a time and keeps a fixed state of what it read. " * 40
PROBE_TOKENS = 200
BUSY_CLIENTS = 16  # streams decoding while the probe waits for its first token
UNBATCHED_MAX_CLIENTS = 16  # one request at a time: more clients only wait longer in its queue
# The targets, at the client counts they name.
SPEEDUP_TARGETS = {16: 3.5, 64: 5.0}  # aggregate tokens/s over one client's, at least
SERVER_SHARE = (64, 0.7)  # at 64 clients, at least this share of the bare batched step's tokens/s
GAP_RATIO = (16, 5.0)  # p99 time between tokens at 16 clients over one client's, at most
FIRST_TOKEN_P99_S = 0.5
MEMORY_GROWTH = (64, 64.0)  # MB above one stream's with 64 active streams, at most


@dataclass
class Stream:
    """One streamed request as a client saw it: when it was sent, each chunk's arrival time and token count, and
    whether it ended (rather than being cut at the deadline)."""

    sent: float
    chunks: list[tuple[float, int]] = field(default_factory=list)
    ended: bool = False

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self.chunks)


def window_start(streams: Sequence[Stream], full: int) -> float:
    """When the batch was full: the `full`-th earliest first-token arrival."""
    firsts = sorted(s.chunks[0][0] for s in streams if s.chunks)
    if len(firsts) < full:
        raise RuntimeError(f"only {len(firsts)} of {full} streams got a token before the deadline: measure longer")
    return firsts[full - 1]


def stream_figures(streams: Sequence[Stream], start: float, deadline: float) -> dict[str, float]:
    """Aggregate tokens/s in (start, deadline], the p99 time between two tokens of one stream (tokens of one chunk
    arrive together) and the mean tokens a chunk, over the chunks that arrived in that window."""
    tokens = chunks = 0
    gaps: list[float] = []
    for stream in streams:
        for (before, _), (at, n) in zip(stream.chunks, stream.chunks[1:]):
            if start < at <= deadline:
                gaps += [at - before] + [0.0] * (n - 1)
        inside = [n for at, n in stream.chunks if start < at <= deadline]
        tokens, chunks = tokens + sum(inside), chunks + len(inside)
    return {
        "tokens_per_s": tokens / (deadline - start),
        "p99_gap_ms": 1000 * float(np.percentile(gaps, 99)) if gaps else float("nan"),
        "tokens_per_chunk": tokens / chunks if chunks else float("nan"),
    }


def first_token_seconds(streams: Sequence[Stream]) -> list[float]:
    """Each stream's time from sending to its first token."""
    return [s.chunks[0][0] - s.sent for s in streams if s.chunks]


def checked(streams: Sequence[Stream], max_tokens: int) -> list[Stream]:
    """`streams`, refused if one that ended wrote other than `max_tokens` tokens (the model cannot end a text)."""
    short = [s.tokens for s in streams if s.ended and s.tokens != max_tokens]
    if short:
        raise RuntimeError(
            f"streams ended with {short[:5]} tokens, not {max_tokens}: a text ended or tokens went uncounted"
        )
    return streams


# The clients' side, run in the client process.


def _drive(url: str, clients: int, body: dict, seconds: float, probe: dict | None, probes: int) -> dict[str, Any]:
    """`clients` streaming clients, each sending `body` again and again for `seconds`, and then until `probes`
    `probe` requests were answered one after another: every stream, every probe and when the clients stopped."""
    return asyncio.run(_clients(url, clients, body, seconds, probe, probes))


async def _clients(url: str, clients: int, body: dict, seconds: float, probe: dict | None, probes: int) -> dict:
    streams: list[Stream] = []
    probed: list[Stream] = []
    stop = asyncio.Event()
    host, port = url.removeprefix("http://").split(":")

    async def client_loop() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not stop.is_set():
                await _one(reader, writer, body, streams, stop)
        finally:
            writer.close()

    tasks = [asyncio.create_task(client_loop()) for _ in range(clients)]
    await asyncio.sleep(seconds)
    reader, writer = await asyncio.open_connection(host, int(port))
    for _ in range(probes):
        await _one(reader, writer, probe, probed, None)
    writer.close()
    stop.set()
    deadline = time.monotonic()
    # Clients still queued (one request at a time) hear nothing more: their connections are closed.
    _, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
    return {"streams": streams, "probes": probed, "deadline": deadline}


async def _one(reader: Any, writer: Any, request: dict, into: list[Stream], stop: asyncio.Event | None) -> None:
    """One streamed request on a kept-alive connection, read the lean way: HTTP/1.1 chunks of server-sent events
    whose tokens are counted in the `token_logprobs` array (numbers only, so its commas count them) rather than by
    parsing JSON, so that the measuring clients take little of the 2 cores the server runs on."""
    payload = json.dumps(request).encode()
    head = "POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
    stream = Stream(time.monotonic())
    into.append(stream)
    writer.write(head.encode() + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    await writer.drain()
    status = await reader.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the server answered {status!r}")
    while await reader.readline() not in (b"\r\n", b""):  # the headers
        pass
    while True:
        size = int((await reader.readline()).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return
        at = time.monotonic()
        for event in data.split(b"\n\n"):
            start = event.find(b'"token_logprobs": [')
            if start < 0:
                continue
            end = event.index(b"]", start)
            tokens = event.count(b",", start, end) + 1 if end > start + len(b'"token_logprobs": [') else 0
            if tokens:
                stream.chunks.append((at, tokens))
            if b'"finish_reason": null' not in event:
                stream.ended = True
        if stop is not None and stop.is_set():
            raise asyncio.CancelledError  # the deadline: this connection is done


# The server's side, in this process.


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return None


@contextlib.contextmanager
def most_resident() -> Iterator[list[float]]:
    """The most resident memory (MB) seen while the block ran, sampled every 20 ms: a list holding it once done."""
    peak: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            now = resident_mb()
            if now is not None:
                peak[:] = [max(peak + [now])]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@contextlib.contextmanager
def serving(completer: Completer, max_batch: int) -> Iterator[tuple[str, Any]]:
    """The application over `completer` under uvicorn on a free loopback port: its URL and its scheduler."""
    from rnngen.server.app import ServedModel, create_app
    from rnngen.server.serving import in_thread

    app = create_app([ServedModel(MODEL_ID, completer, 0)], None, max_batch, max_queue=4096)
    with in_thread(app) as url:
        yield url, app.state.schedulers[MODEL_ID]


def _settled(scheduler: Any) -> None:
    """Wait until the streams cut at the last deadline have left the batch and the queue."""
    until = time.monotonic() + 30
    while scheduler.rows or scheduler.waiting:
        if time.monotonic() > until:
            raise RuntimeError("cancelled streams are still decoding 30 s after their clients left")
        time.sleep(0.01)


def streamed(prompt: str, tokens: int) -> dict[str, Any]:
    """A streamed completion request whose chunks list their tokens (logprobs 0), with the default sampling."""
    return {"model": MODEL_ID, "prompt": prompt, "max_tokens": tokens, "stream": True, "logprobs": 0}


def measure(
    pool: Executor, url: str, scheduler: Any, clients: int, full: int, tokens: int, seconds: float
) -> dict[str, Any]:
    """`clients` streaming for `seconds`: the figures of `stream_figures` from when `full` streams decode, and the
    most resident memory meanwhile."""
    body = streamed(PROMPT, tokens)
    with most_resident() as peak:
        run = pool.submit(_drive, url, clients, body, seconds, None, 0).result()
    _settled(scheduler)
    streams = checked(run["streams"], tokens)
    figures = stream_figures(streams, window_start(streams, full), run["deadline"])
    return {**figures, "resident_mb": peak[0] if peak else None}


def first_token_p99(
    pool: Executor, url: str, scheduler: Any, busy: int, prompt: str, tokens: int, probes: int
) -> float:
    """The p99 time to the first token of `prompt`, sent `probes` times one after another while `busy` clients
    stream."""
    body = streamed(PROMPT, tokens)
    probe = streamed(prompt, 1)
    # The probes start once the busy clients all stream.
    run = pool.submit(_drive, url, busy, body, 0.5, probe, probes).result()
    _settled(scheduler)
    return float(np.percentile(first_token_seconds(checked(run["probes"], 1)), 99))


def bare_step(completer: Completer, rows: int, seconds: float) -> float:
    """Tokens/s of the bare batched step at `rows` rows: the model's step and one vectorised draw, no server."""
    lm = completer.lm
    memory, _ = completer.prime(PROMPT)
    state = select_rows(memory.state, [0] * rows)
    logits, state = lm.step(lm.ids([completer.tokenizer.eot_id] * rows), state)
    options = RowOptions.of([SampleConfig()] * rows)
    generators = [lm.generator(row) for row in range(rows)]
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tokens = draw_rows(filter_rows(logits, options), options, generators)
        logits, state = lm.step(lm.ids(tokens), state)
        steps += 1
    return rows * steps / (time.perf_counter() - started)


def probe_prompt(tok) -> str:
    """A prompt of about `PROBE_TOKENS` tokens."""
    return tok.decode(tok.encode(PROBE_TEXT)[:PROBE_TOKENS])


def measure_device(
    completer: Completer, pool: Executor, clients: Sequence[int], tokens: int, seconds: float, probes: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every figure of the table on one device: a line per client count (the server, reference (a) up to
    `UNBATCHED_MAX_CLIENTS` clients, reference (b)), and the time to the first token of a long prompt."""
    busy = min(BUSY_CLIENTS, max(clients))
    prompt = probe_prompt(completer.tokenizer)
    server: dict[int, dict[str, Any]] = {}
    unbatched: dict[int, dict[str, Any]] = {}
    # Room for the probe beside the busy clients, as beside the 64 clients of `rnngen serve`'s default batch.
    with serving(completer, max(*clients, busy + 1)) as (url, scheduler):
        pool.submit(_drive, url, 1, streamed(PROMPT, 16), 0.5, None, 0).result()  # warm: first requests cost more
        _settled(scheduler)
        for n in clients:
            server[n] = measure(pool, url, scheduler, n, n, tokens, seconds)
        first_token = first_token_p99(pool, url, scheduler, busy, prompt, tokens, probes)
    with serving(completer, 1) as (url, scheduler):
        for n in clients:
            if n <= UNBATCHED_MAX_CLIENTS:
                unbatched[n] = measure(pool, url, scheduler, n, 1, tokens, seconds)
    lines = []
    for n in clients:
        bare = bare_step(completer, n, seconds)
        lines.append(
            {
                "clients": n,
                "tokens_per_s": server[n]["tokens_per_s"],
                "over_one_client": server[n]["tokens_per_s"] / server[1]["tokens_per_s"],
                "one_at_a_time_tokens_per_s": unbatched[n]["tokens_per_s"] if n in unbatched else None,
                "bare_tokens_per_s": bare,
                "server_over_bare": server[n]["tokens_per_s"] / bare,
                "p99_gap_ms": server[n]["p99_gap_ms"],
                "tokens_per_chunk": server[n]["tokens_per_chunk"],
                "resident_mb": server[n]["resident_mb"],
            }
        )
    probe = {
        "first_token_p99_s": first_token,
        "probe_prompt_tokens": len(completer.tokenizer.encode(prompt)),
        "busy_clients": busy,
    }
    return lines, probe


def targets(lines: Sequence[dict[str, Any]], probe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets that these client counts reach: each figure, its bound, and whether it is met."""
    at = {line["clients"]: line for line in lines}
    checks: dict[str, tuple[float, str, float]] = {}
    for n, least in SPEEDUP_TARGETS.items():
        if n in at:
            checks[f"speedup_{n}"] = (at[n]["over_one_client"], ">=", least)
    n, least = SERVER_SHARE
    if n in at:
        checks[f"server_over_bare_{n}"] = (at[n]["server_over_bare"], ">=", least)
    n, most = GAP_RATIO
    if n in at:
        checks[f"p99_gap_ratio_{n}"] = (at[n]["p99_gap_ms"] / at[1]["p99_gap_ms"], "<=", most)
    if probe["busy_clients"] == BUSY_CLIENTS:
        checks["first_token_p99_s"] = (probe["first_token_p99_s"], "<=", FIRST_TOKEN_P99_S)
    n, most = MEMORY_GROWTH
    if n in at and at[1]["resident_mb"] is not None:
        checks[f"memory_growth_mb_{n}"] = (at[n]["resident_mb"] - at[1]["resident_mb"], "<=", most)
    return {
        name: {"value": value, "bound": f"{op} {bound}", "pass": value >= bound if op == ">=" else value <= bound}
        for name, (value, op, bound) in checks.items()
    }


def run(corpus, quick: bool, clients: Sequence[int] | None = None, tokens: int | None = None) -> list[dict[str, Any]]:
    """The table on the CPU, and on the GPU where one is at hand: a row per device and client count, then a row
    per device with the targets."""
    import torch

    from benchmarks.generation import endless_model

    tok = corpus.tokenizer()
    model = endless_model(tok)
    seconds, probes = (QUICK_SECONDS, QUICK_PROBES) if quick else (SECONDS, PROBES)
    tokens = tokens or (QUICK_TOKENS if quick else TOKENS)
    # One client's figures are what the targets compare with.
    clients = sorted(set(clients or (QUICK_CLIENTS if quick else CLIENTS)) | {1})
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    shape = model.config
    about = {
        "model": f"{shape.kind} {shape.layers}x{shape.hidden} (cpu preset), vocab {tok.vocab_size}",
        "tokens_per_request": tokens,
        "seconds": seconds,
    }
    rows: list[dict[str, Any]] = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        for device in devices:
            completer = Completer.for_module(model, tok, device)
            lines, probe = measure_device(completer, pool, clients, tokens, seconds, probes)
            checks = targets(lines, probe)
            _print(device, lines, probe, checks)
            rows += [{"benchmark": "serve", "device": device, **about, **line} for line in lines]
            rows.append(
                {
                    "benchmark": "serve targets",
                    "device": device,
                    **about,
                    **probe,
                    **{name: check["value"] for name, check in checks.items()},
                    "targets": {name: check["bound"] for name, check in checks.items()},
                    "pass": all(check["pass"] for check in checks.values()) if checks else None,
                }
            )
    return rows


def _print(device: str, lines: Sequence[dict[str, Any]], probe: dict[str, Any], checks: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"rnngen serve on {device}: streamed tokens/s", title_justify="left")
    columns = {
        "clients": "{}",
        "tokens_per_s": "{:,.0f}",
        "over_one_client": "{:.2f}",
        "one_at_a_time_tokens_per_s": "{:,.0f}",
        "bare_tokens_per_s": "{:,.0f}",
        "server_over_bare": "{:.2f}",
        "p99_gap_ms": "{:.2f}",
        "tokens_per_chunk": "{:.2f}",
        "resident_mb": "{:.0f}",
    }
    headers = ("clients", "server", "x one", "one at a time (a)", "bare step (b)", "server / bare", "p99 gap ms")
    for header in (*headers, "tokens a chunk", "resident MB"):
        table.add_column(header, justify="right")
    for line in lines:
        table.add_row(*(shape.format(line[key]) if line[key] is not None else "-" for key, shape in columns.items()))
    console.print(table)
    console.print(
        f"p99 time to the first token of a {probe['probe_prompt_tokens']}-token prompt with {probe['busy_clients']} "
        f"clients streaming: {probe['first_token_p99_s']:.3f} s"
    )
    for name, check in checks.items():
        mark = "[green]met[/]" if check["pass"] else "[red]missed[/]"
        console.print(f"  {name} = {check['value']:.3g} (target {check['bound']}): {mark}")
