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
    head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
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


# `python -m benchmarks serve --conversation`: what the state cache saves, against the same server without it.

TURNS, QUICK_TURNS = 20, 4  # (a) turns of one chat
TURN_TOKENS = 100  # (a) tokens of user text a turn, and the reply's max_tokens
DOCUMENT_TOKENS = 4000  # (b) the shared document
QUESTIONS, QUICK_QUESTIONS = 16, 4  # (b) questions about it
QUESTION_TOKENS = 30
AT_ONCE = 4  # (b) questions sent together
ANSWER_TOKENS = 30
FILL_MB = 2  # (c) the bound of the cache the fill measures
FILL_REQUESTS, QUICK_FILL_REQUESTS = 600, 60
SEED = 1
CHATS = 3  # (a) chats of other text, whose times are taken the median of
CHAT_START, CHAT_APART = 40_000, 15_000  # (a) where each chat's user text starts in the source text
# The targets for the conversation.
LAST_TURN_RATIO = 1.5  # (a) the last turn's time to the first token over the first's, with the cache, at most
QUESTION_READ_TOKENS = 40  # (b) tokens read a question at most, besides the document once


class Server:
    """`rnngen serve` as a user starts it (the default checkpoint, NumPy's threads chosen by the command), in a
    process of its own on a free loopback port, with `options` added."""

    def __init__(self, *options: str, env: dict[str, str] | None = None):
        import subprocess
        import sys

        command = [sys.executable, "-m", "rnngen", "serve", "--device", "cpu", "--port", "0", *options]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        line = self.process.stderr.readline()
        if "listening on " not in line:
            self.process.kill()
            raise RuntimeError(f"rnngen serve did not start: {line}{self.process.stderr.read()}")
        self.url = line.split("listening on ")[1].split(" ")[0]
        self.model = line.rsplit("serving ", 1)[1].split(";")[0]
        # The line on the cores other processes keep busy, printed at once when there is one.
        import select

        noted = select.select([self.process.stderr], [], [], 1.0)[0]
        self.note = self.process.stderr.readline().strip() if noted else ""

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resident_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def metrics(self) -> dict[str, float]:
        """The server's /metrics, each sample by its name (labels dropped: one model)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.url + "/metrics") as response:
            text = response.read().decode()
        return {
            s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels.get("le")
        }

    def ask(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        """One streamed request: the time to its first token, its text and its usage."""
        import http.client

        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        request = {**body, "model": self.model, "stream": True, "stream_options": {"include_usage": True}}
        request["logprobs"] = True if chat else 0
        sent = time.monotonic()
        connection.request(
            "POST",
            "/v1/chat/completions" if chat else "/v1/completions",
            json.dumps(request),
            {"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}: {response.read()!r}")
        first, text, usage = None, "", None
        for line in response:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                tokens = (choice["logprobs"] or {}).get("content" if chat else "tokens") or []
                if tokens and first is None:
                    first = time.monotonic() - sent
                text += choice["delta"].get("content") or "" if chat else choice["text"]
        connection.close()
        return {"first_token_s": first, "text": text, "usage": usage}


def _words(tok, text: str, tokens: int, start: int = 0) -> tuple[str, int]:
    """A piece of `text` from character `start` of about `tokens` tokens, cut after a space, and where it ended."""
    end = start + 1
    while len(tok.encode(text[start:end])) < tokens and end < len(text):
        end = text.find(" ", end + 1) + 1 or len(text)
    return text[start:end], end


def _chat(server: Server, tok, source: str, turns: int, at: int) -> list[dict[str, Any]]:
    """(a): `turns` turns, each adding about `TURN_TOKENS` tokens of user text (from character `at` of `source`)
    and a reply of as many at most."""
    messages: list[dict[str, str]] = []
    measured = []
    for turn in range(turns):
        user, at = _words(tok, source, TURN_TOKENS, at)
        messages.append({"role": "user", "content": user})
        answer = server.ask({"messages": messages, "max_tokens": TURN_TOKENS, "seed": SEED + turn}, chat=True)
        messages.append({"role": "assistant", "content": answer["text"]})
        usage = answer["usage"]
        measured.append(
            {
                "turn": turn + 1,
                "first_token_s": answer["first_token_s"],
                "prompt_tokens": usage["prompt_tokens"],
                "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
                "reply_tokens": usage["completion_tokens"],
                "text": answer["text"],
            }
        )
    return measured


def _questions(server: Server, tok, source: str, questions: int) -> dict[str, Any]:
    """(b): a document of `DOCUMENT_TOKENS` tokens read once, then `questions` questions about it, `AT_ONCE` at a
    time: each question's time to its first token and usage, and the prompt tokens read in all."""
    from concurrent.futures import ThreadPoolExecutor

    document, at = _words(tok, source, DOCUMENT_TOKENS)
    before = server.metrics()
    read = server.ask({"prompt": document, "max_tokens": 1, "seed": SEED}, chat=False)
    prompts = []
    for _ in range(questions):
        question, at = _words(tok, source, QUESTION_TOKENS, at)
        prompts.append(f"{document}\n{question}")
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(
            pool.map(
                lambda p: server.ask({"prompt": p, "max_tokens": ANSWER_TOKENS, "seed": SEED}, chat=False), prompts
            )
        )
    after = server.metrics()
    asked = [read, *answers]
    read_tokens = sum(a["usage"]["prompt_tokens"] - a["usage"]["prompt_tokens_details"]["cached_tokens"] for a in asked)
    return {
        "document_tokens": read["usage"]["prompt_tokens"],
        "first_token_s": [a["first_token_s"] for a in answers],
        "cached_tokens": [a["usage"]["prompt_tokens_details"]["cached_tokens"] for a in answers],
        "prompt_tokens": [a["usage"]["prompt_tokens"] for a in answers],
        "texts": [a["text"] for a in answers],
        "read_tokens": read_tokens,
        # The server's own count of what it did not read, over the same requests, for the answers' to agree with.
        "metrics_cached_tokens": after["rnngen_cached_prompt_tokens_total"]
        - before["rnngen_cached_prompt_tokens_total"],
    }


def _fill(quick: bool) -> dict[str, Any]:
    """(c): a server with a `FILL_MB` MB cache sent many distinct prompts: the most bytes its cache held (read after
    every request), its bound, and the server's resident memory before and after."""
    requests = QUICK_FILL_REQUESTS if quick else FILL_REQUESTS
    with Server("--state-cache", str(FILL_MB)) as server:
        server.ask({"prompt": "warm", "max_tokens": 1}, chat=False)
        resident = server.resident_mb()
        most = entries = 0.0
        for number in range(requests):
            prompt = f"Request {number}: " + " ".join(f"word{(number * 7 + k) % 1000}" for k in range(40))
            server.ask({"prompt": prompt, "max_tokens": 1}, chat=False)
            figures = server.metrics()
            most = max(most, figures["rnngen_state_cache_bytes"])
            entries = figures["rnngen_state_cache_entries"]
        return {
            "bound_bytes": FILL_MB * 2**20,
            "most_bytes": most,
            "entries_at_end": entries,
            "requests": requests,
            "resident_mb_before": resident,
            "resident_mb_after": server.resident_mb(),
        }


THREADS_TOKENS = 500  # (d) the request timed under each choice of NumPy's threads
THREAD_ROUNDS = 5
THREAD_CHOICES = {"chosen by rnngen serve": None, "1": "1", "all cores": str(os.cpu_count() or 1)}


def _threads(quick: bool) -> dict[str, Any]:
    """(d): the time of one request of `THREADS_TOKENS` tokens with NumPy's threads as `rnngen serve` chooses them
    for the cores other processes leave free, with one, and with every core: a fresh server each, in rounds that
    take turns (a shared machine's load changes), each round the best of a few requests after one to warm up; the
    median over the rounds, and the machine's load meanwhile."""
    rounds: dict[str, list[float]] = {name: [] for name in THREAD_CHOICES}
    body = {"prompt": "The gradient", "max_tokens": THREADS_TOKENS, "seed": SEED}
    for _ in range(1 if quick else THREAD_ROUNDS):
        for name, threads in THREAD_CHOICES.items():
            env = {
                key: value
                for key, value in os.environ.items()
                if key not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
            }
            if threads is not None:
                env["OPENBLAS_NUM_THREADS"] = threads
            with Server(env=env) as server:
                server.ask({**body, "max_tokens": 8}, chat=False)
                times = []
                for _ in range(3):
                    started = time.monotonic()
                    server.ask(body, chat=False)
                    times.append(time.monotonic() - started)
            rounds[name].append(min(times))
    return {"seconds": {name: float(np.median(times)) for name, times in rounds.items()}, "load": os.getloadavg()}


def conversation(quick: bool) -> list[dict[str, Any]]:
    """(a) a chat, (b) questions about one document, each with the state cache and without it, and (c) the cache's
    memory at its bound, served by `rnngen serve` over the latest run: the rows of the JSON results."""
    from rnngen.generation.loading import load_completer
    from rnngen.store.locations import checkpoints_dir

    completer = load_completer(None, checkpoints_dir(None), "cpu").completer
    tok = completer.tokenizer
    model = completer.lm.config
    source = _source_text()
    turns, questions = (QUICK_TURNS, QUICK_QUESTIONS) if quick else (TURNS, QUESTIONS)
    about = {"model": f"{model.kind} {model.layers}x{model.hidden}, vocab {tok.vocab_size}", "load": os.getloadavg()}
    rows: list[dict[str, Any]] = []
    chats: dict[str, list[list[dict[str, Any]]]] = {"on": [], "off": []}
    asked = {}
    for cache in ("on", "off"):
        with Server(*(["--state-cache", "0"] if cache == "off" else [])) as server:
            server.ask({"prompt": "Warm up.", "max_tokens": 8}, chat=False)  # a first request costs more
            # Each chat of other text (no turn of one is a prefix of another's): a time a turn is the median of them.
            for repeat in range(1 if quick else CHATS):
                chats[cache].append(_chat(server, tok, source, turns, CHAT_START + repeat * CHAT_APART))
            asked[cache] = _questions(server, tok, source, questions)
            about["threads_note"] = about.get("threads_note") or server.note
    # At a seed, the cache changes no text.
    same = all(
        [turn["text"] for turn in on] == [turn["text"] for turn in off] for on, off in zip(chats["on"], chats["off"])
    )
    same = same and asked["on"]["texts"] == asked["off"]["texts"]
    first = {
        cache: [float(np.median([chat[turn]["first_token_s"] for chat in chats[cache]])) for turn in range(turns)]
        for cache in chats
    }
    chats = {cache: runs[0] for cache, runs in chats.items()}  # the first chat's tokens, as an example
    rows.append(
        {
            "benchmark": "serve conversation (a) chat",
            **about,
            "turns": turns,
            "first_token_s_cached": first["on"],
            "first_token_s_uncached": first["off"],
            "prompt_tokens": [turn["prompt_tokens"] for turn in chats["on"]],
            "cached_tokens": [turn["cached_tokens"] for turn in chats["on"]],
            "reply_tokens": [turn["reply_tokens"] for turn in chats["on"]],
            "last_over_first_cached": first["on"][-1] / first["on"][0],
            "last_over_first_uncached": first["off"][-1] / first["off"][0],
            "same_text": same,
            "pass": first["on"][-1] <= LAST_TURN_RATIO * first["on"][0] and same,
        }
    )
    budget = asked["on"]["document_tokens"] + questions * QUESTION_READ_TOKENS
    rows.append(
        {
            "benchmark": "serve conversation (b) questions",
            **about,
            "questions": questions,
            "at_once": AT_ONCE,
            "read_tokens_cached": asked["on"]["read_tokens"],
            "read_tokens_uncached": asked["off"]["read_tokens"],
            "read_budget": budget,
            "first_token_s_cached": asked["on"]["first_token_s"],
            "first_token_s_uncached": asked["off"]["first_token_s"],
            "cached_tokens": asked["on"]["cached_tokens"],
            "cached_tokens_agree_with_metrics": sum(asked["on"]["cached_tokens"])
            == asked["on"]["metrics_cached_tokens"],
            "same_text": same,
            "pass": asked["on"]["read_tokens"] <= budget and same,
        }
    )
    filled = _fill(quick)
    rows.append(
        {
            "benchmark": "serve conversation (c) cache at its bound",
            **about,
            **filled,
            "pass": filled["most_bytes"] <= filled["bound_bytes"],
        }
    )
    timed = _threads(quick)
    chosen, one = timed["seconds"]["chosen by rnngen serve"], timed["seconds"]["1"]
    rows.append(
        {
            "benchmark": "serve conversation (d) NumPy threads",
            **about,
            **timed,
            "tokens": THREADS_TOKENS,
            "chosen_over_one_thread": chosen / one,
            "pass": chosen <= 1.3 * one,
        }
    )
    _print_conversation(rows)
    return rows


def _source_text() -> str:
    """Plain English prose to chat and ask about: the docstrings of this package, joined."""
    import ast
    import pathlib

    import rnngen

    texts = []
    for path in sorted(pathlib.Path(rnngen.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                texts.append(" ".join(ast.get_docstring(node).split()))
    return " ".join(texts)


def _print_conversation(rows: Sequence[dict[str, Any]]) -> None:
    console = Console()
    chat, questions, fill, threads = rows
    table = Table(title="rnngen serve: a chat, time to the first token of each turn (s)", title_justify="left")
    for header in ("turn", "prompt tokens", "cached", "with the cache", "without"):
        table.add_column(header, justify="right")
    for turn, (prompt, cached, on, off) in enumerate(
        zip(chat["prompt_tokens"], chat["cached_tokens"], chat["first_token_s_cached"], chat["first_token_s_uncached"]),
        1,
    ):
        table.add_row(str(turn), f"{prompt:,}", f"{cached:,}", f"{on:.3f}", f"{off:.3f}")
    console.print(table)
    console.print(
        f"(b) {questions['questions']} questions about a {DOCUMENT_TOKENS}-token document, {AT_ONCE} at a time: "
        f"{questions['read_tokens_cached']:,} prompt tokens read with the cache (budget {questions['read_budget']:,}), "
        f"{questions['read_tokens_uncached']:,} without; median time to the first token "
        f"{np.median(questions['first_token_s_cached']):.3f} s against "
        f"{np.median(questions['first_token_s_uncached']):.3f} s"
    )
    console.print(
        f"(c) a {fill['bound_bytes'] / 2**20:g} MB cache after {fill['requests']} prompts: at most "
        f"{fill['most_bytes'] / 2**20:.2f} MB, {fill['entries_at_end']:.0f} states; the server's resident memory "
        f"{fill['resident_mb_before']:.0f} -> {fill['resident_mb_after']:.0f} MB"
    )
    console.print(
        f"(d) one {threads['tokens']}-token request: "
        + ", ".join(f"{name} {value:.2f} s" for name, value in threads["seconds"].items())
        + f" (load average {threads['load'][0]:.1f})"
    )
