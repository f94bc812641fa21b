"""The ASGI application (FastAPI): OpenAI's routes, the operators' routes and the web page, over one scheduler a
model.

Each model has a `Scheduler` (continuous batching, a cache of the states its prompts left) running in its own
thread. A request becomes one ticket a prompt; the scheduler hands every step's updates to the event loop in one call
(`call_soon_threadsafe`), which puts each on its request's queue. A streamed response sends what has arrived each
time it wakes, so a client slower than the model gets several tokens a chunk rather than falling behind; a client
that goes away cancels its tickets, and their rows leave the batch before the next step.

Before any route, `guards.Guard` checks the Host, the Origin of a POST and the API key. A body must arrive within
`BODY_SECONDS`. Once the server is told to stop (`begin_shutdown`), each request still open ends before the grace
period runs out, a stream with an error event and `[DONE]`, rather than being cut by uvicorn mid-chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from rnngen.generation.completer import Completer
from rnngen.generation.limits import MAX_BATCH, MAX_PROMPT_TOKENS, MAX_QUEUE, STATE_CACHE_MB
from rnngen.generation.scheduler import Busy, Closing, Scheduler, Ticket, TooLarge, Update
from rnngen.server.guards import Guard, normal_origin
from rnngen.server.metrics import CONTENT_TYPE, Metrics, route_of
from rnngen.server.requests import (
    MAX_BODY_BYTES,
    BadRequest,
    ChatRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    parse,
)
from rnngen.server.responses import Choice, Reply, error_body
from rnngen.store.atomic import strict_json

RETRY_AFTER_SECONDS = 1
DISCONNECT_CHECK_SECONDS = 0.5  # how often a request that does not stream asks whether its client is still there
BODY_SECONDS = 10.0  # a body that has not all arrived by then is refused: slow bodies hold no connection for long
SHUTDOWN_MESSAGE = "the server is shutting down: send the request again once it is back"


@dataclass(frozen=True)
class ServedModel:
    """A model the server serves: its id (the run's name), its completer, and when its checkpoint was written."""

    id: str
    completer: Completer
    created: int


def begin_shutdown(app: FastAPI, grace: float) -> None:
    """The server stops: the requests in flight end within `grace` seconds (uvicorn's grace too: they end a little
    before it, a stream with an error event and `[DONE]`), and /health says so. Safe to call from a signal handler."""
    app.state.stopping = True
    loop = app.state.loop
    if loop is not None:
        loop.call_soon_threadsafe(loop.call_later, grace - min(1.0, grace / 2), _end_requests, app)


def _end_requests(app: FastAPI) -> None:
    """Tell every request still waiting for updates that the server stops now."""
    for queue in app.state.listening:
        queue.put_nowait(None)


def create_app(
    models: list[ServedModel],
    api_key: str | None = None,
    max_batch: int = MAX_BATCH,
    max_queue: int = MAX_QUEUE,
    state_cache_mb: float = STATE_CACHE_MB,
    max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    allowed_hosts: list[str] | tuple[str, ...] | None = (),
    cors_origins: list[str] | tuple[str, ...] = (),
) -> FastAPI:
    """The application serving `models`; with `api_key`, every route but the page and /health needs
    `Authorization: Bearer API_KEY`. `allowed_hosts` are the Host names it answers to besides loopback ones (None:
    any), `cors_origins` the web pages' origins that may use it; `state_cache_mb` bounds each model's state cache
    (0: none) and `max_prompt_tokens` a request's prompts."""
    schedulers: dict[str, Scheduler] = {}
    metrics = Metrics(schedulers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def deliver(updates: list[tuple[Ticket, Update]]) -> None:
            loop.call_soon_threadsafe(_dispatch, updates)

        app.state.loop = loop
        for model in models:
            schedulers[model.id] = Scheduler(
                model.completer, deliver, max_batch, max_queue, int(state_cache_mb * 2**20), max_prompt_tokens
            )
        yield
        for scheduler in schedulers.values():
            await asyncio.to_thread(scheduler.close)

    app = FastAPI(title="rnngen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.schedulers = schedulers
    app.state.metrics = metrics
    app.state.loop = None
    app.state.stopping = False
    app.state.listening = set()  # the queues of the requests waiting for updates
    # Added last is outermost: requests are counted, then the Host checked, then CORS answered, then the rest.
    app.add_middleware(Guard, hosts=None, origins=cors_origins, key=api_key)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[normal_origin(origin) for origin in cors_origins],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Guard, hosts=allowed_hosts)
    app.add_middleware(_Counted, metrics=metrics)

    @app.exception_handler(BadRequest)
    async def refused(request: Request, exc: BadRequest) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 429 else {}
        if exc.status == 408:
            headers["Connection"] = "close"  # the rest of the body may still come: the connection is not reused
        return JSONResponse(error_body(exc.message, exc.status, exc.param, exc.code), exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), exc.status_code), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", 500), 500)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("rnngen.server").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health() -> JSONResponse:
        # Ready once every model's scheduler runs (the models are loaded before the port opens); not once stopping.
        status = "stopping" if app.state.stopping else "ok" if len(schedulers) == len(models) else "starting"
        body = {
            "status": status,
            "models": {
                name: {
                    "rows": s.rows,
                    "waiting": s.waiting,
                    "steps": s.steps,
                    "tokens": s.tokens,
                    "cache_bytes": s.cache.bytes,
                    "cache_entries": s.cache.entries,
                }
                for name, s in schedulers.items()
            },
        }
        return JSONResponse(body, 200 if status == "ok" else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model) for model in models]}

    @app.get("/v1/models/{model_id:path}")
    async def one_model(model_id: str) -> dict[str, Any]:
        return _model_card(_served(models, model_id))

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        req = parse(await _body(request), TokenizeRequest)
        completer = _served(models, req.model_id(models)).completer
        ids = completer.tokenizer.encode(req.text)
        if req.special:
            ids = completer.document(ids)
        answer: dict[str, Any] = {"tokens": ids, "count": len(ids), "max_model_len": max_prompt_tokens}
        if req.with_pieces or req.return_token_strs:
            pieces = [completer.tokenizer.decode([token]) for token in ids]
            if req.with_pieces:  # llama.cpp's shape
                answer["tokens"] = [{"id": token, "piece": piece} for token, piece in zip(ids, pieces)]
            if req.return_token_strs:  # vLLM's
                answer["token_strs"] = pieces
        return answer

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        req = parse(await _body(request), DetokenizeRequest)
        tokenizer = _served(models, req.model_id(models)).completer.tokenizer
        bad = [token for token in req.tokens if not 0 <= token < tokenizer.vocab_size]
        if bad:
            raise BadRequest(f"token {bad[0]} is not an id of this model's {tokenizer.vocab_size}", "tokens")
        text = tokenizer.decode(req.tokens)
        return {"content": text, "prompt": text}  # llama.cpp's field and vLLM's

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        req = parse(await _body(request), CompletionRequest)
        model = _served(models, req.model)
        cfg, prompts = req.sample_config(req.max_tokens), req.prompts
        tickets = [Ticket(prompt, cfg, req.n, req.logprobs or 0) for prompt in prompts]
        shapes = Reply(model.id, chat=False)
        prefixes = prompts if req.echo else None
        return await _respond(request, app, model.id, tickets, shapes, req, req.logprobs, prefixes)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = parse(await _body(request), ChatRequest)
        model = _served(models, req.model)
        cfg = req.sample_config(req.token_limit)
        alternatives = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs is not None and not req.logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", "top_logprobs")
        tickets = [Ticket(req.running_text, cfg, req.n, alternatives or 0)]
        return await _respond(request, app, model.id, tickets, Reply(model.id, chat=True), req, alternatives)

    return app


def _dispatch(updates: list[tuple[Ticket, Update]]) -> None:
    for ticket, update in updates:
        ticket.listener.put_nowait((ticket, update))


def _served(models: list[ServedModel], name: str) -> ServedModel:
    for model in models:
        if model.id == name:
            return model
    served = ", ".join(model.id for model in models)
    raise BadRequest(f"the model {name!r} is not served here: choose {served}", "model", 404, "model_not_found")


def _model_card(model: ServedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": "rnngen"}


async def _body(request: Request) -> bytes:
    """The request's body, refused with a 413 once it passes `MAX_BODY_BYTES` (before reading it, when its length
    is declared), and with a 408 when it has not all arrived within `BODY_SECONDS`."""
    declared = request.headers.get("content-length", "")
    too_large = BadRequest(f"the body is larger than {MAX_BODY_BYTES:,} bytes", None, 413, "request_too_large")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise too_large

    try:
        await asyncio.wait_for(read(), BODY_SECONDS)
    except asyncio.TimeoutError as exc:
        message = f"the body did not arrive within {BODY_SECONDS:g} s: send it at once"
        raise BadRequest(message, None, 408, "request_timeout") from exc
    return bytes(body)


async def _respond(
    request: Request,
    app: FastAPI,
    model_id: str,
    tickets: list[Ticket],
    shapes: Reply,
    req: Any,
    alternatives: int | None,
    prefixes: list[str] | None = None,
) -> Response:
    """Submit the tickets and answer: a stream of server-sent events, or one JSON object once every choice ended."""
    queue: asyncio.Queue[tuple[Ticket, Update] | None] = asyncio.Queue()  # None: the server stops now
    for ticket in tickets:
        ticket.listener = queue
    try:
        app.state.schedulers[model_id].submit(tickets)
    except Busy as exc:
        raise BadRequest(str(exc), None, 429, "rate_limit_exceeded") from exc
    except Closing as exc:
        raise BadRequest(str(exc), None, 503, "shutting_down") from exc
    except TooLarge as exc:
        raise BadRequest(str(exc), "messages" if shapes.chat and exc.field == "prompt" else exc.field) from exc
    choices = {
        (id(ticket), choice): Choice(number * ticket.choices + choice, prefixes[number] if prefixes else "")
        for number, ticket in enumerate(tickets)
        for choice in range(ticket.choices)
    }
    metrics: Metrics = app.state.metrics
    timing = _Timing(metrics.first_token.labels(model_id), metrics.between_tokens.labels(model_id))
    app.state.listening.add(queue)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = _stream(app, queue, tickets, choices, shapes, alternatives, include_usage, timing)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        ended = await _gather(request, queue, choices, timing)
    finally:
        app.state.listening.discard(queue)
        for ticket in tickets:
            ticket.cancel()
    if not ended:
        return JSONResponse(error_body(SHUTDOWN_MESSAGE, 503, None, "shutting_down"), 503)
    failed = [choice.error for choice in choices.values() if choice.error]
    if failed:
        return JSONResponse(error_body(failed[0], 500), 500)
    ordered = sorted(choices.values(), key=lambda choice: choice.index)
    return JSONResponse(shapes.whole(ordered, *_prompt_usage(tickets), alternatives))


def _prompt_usage(tickets: list[Ticket]) -> tuple[int, int]:
    """The prompt tokens of a request, and how many of them came from the state cache."""
    return sum(ticket.prompt_tokens for ticket in tickets), sum(ticket.cached_tokens for ticket in tickets)


class _Timing:
    """Observes a request's time to its first token and between its tokens, per choice, as its updates arrive."""

    def __init__(self, first_token: Any, between_tokens: Any):
        self.first_token, self.between_tokens = first_token, between_tokens
        self.last: dict[int, float] = {}  # choice index -> when its last token arrived

    def arrived(self, ticket: Ticket, choice: Choice, tokens: int) -> None:
        if not tokens:
            return
        now = time.monotonic()
        last = self.last.get(choice.index)
        if last is None:
            self.first_token.observe(now - ticket.submitted)
        else:
            for _ in range(tokens):  # tokens that came together were written a step apart
                self.between_tokens.observe((now - last) / tokens)
        self.last[choice.index] = now


def _apply(choices: dict[tuple[int, int], Choice], ticket: Ticket, update: Update, timing: _Timing) -> Choice:
    choice = choices[(id(ticket), update.choice)]
    timing.arrived(ticket, choice, len(update.steps))
    choice.text += update.text
    choice.steps += update.steps
    if update.error is not None:
        choice.reason, choice.error = "stop", update.error
    elif update.reason is not None:
        choice.reason = update.reason
    return choice


async def _gather(
    request: Request, queue: asyncio.Queue, choices: dict[tuple[int, int], Choice], timing: _Timing
) -> bool:
    """Wait until every choice ended (True); a client that went away, or the server stopping, stops the wait (False).
    The client is asked about every `DISCONNECT_CHECK_SECONDS`, whether updates come or not."""
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while any(choice.reason is None for choice in choices.values()):
        with contextlib.suppress(asyncio.TimeoutError):
            item = await asyncio.wait_for(queue.get(), timeout=DISCONNECT_CHECK_SECONDS)
            if item is None:
                return False
            _apply(choices, *item, timing)
        if loop.time() - checked >= DISCONNECT_CHECK_SECONDS:
            checked = loop.time()
            if await request.is_disconnected():
                return False
    return True


async def _stream(
    app: FastAPI,
    queue: asyncio.Queue,
    tickets: list[Ticket],
    choices: dict[tuple[int, int], Choice],
    shapes: Reply,
    alternatives: int | None,
    include_usage: bool,
    timing: _Timing,
) -> AsyncIterator[str]:
    """Server-sent events: one chunk per choice each time updates arrive, then usage (when asked) and [DONE]; an
    error event and [DONE] when the server stops first."""

    def event(body: dict[str, Any]) -> str:
        return f"data: {strict_json(body, ensure_ascii=False)}\n\n"

    try:
        for choice in choices.values():
            if shapes.chat or choice.prefix:  # the assistant's role, or the prompt given back (`echo`), first
                yield event(shapes.chunk(choice, choice.prefix, [], alternatives, first=True))
                choice.offset = len(choice.prefix)
        stopped = False
        while any(choice.reason is None for choice in choices.values()) and not stopped:
            arrived = [await queue.get()]
            while not queue.empty():
                arrived.append(queue.get_nowait())
            stopped = None in arrived
            fresh: dict[int, tuple[Choice, str, list]] = {}
            for ticket, update in filter(None, arrived):
                choice = _apply(choices, ticket, update, timing)
                _, text, steps = fresh.get(choice.index, (choice, "", []))
                fresh[choice.index] = (choice, text + update.text, steps + update.steps)
            for choice, text, steps in fresh.values():
                if choice.error:
                    yield event(error_body(choice.error, 500))
                elif text or steps or choice.reason:
                    yield event(shapes.chunk(choice, text, steps, alternatives))
                    # Offsets count the tokens' text: a stop string's hold-back sends text later than its tokens.
                    choice.offset += sum(len(step.text) for step in steps)
        if stopped:
            yield event(error_body(SHUTDOWN_MESSAGE, 503, None, "shutting_down"))
        elif include_usage:
            completion_tokens = sum(len(choice.steps) for choice in choices.values())
            yield event(shapes.usage_chunk(*_prompt_usage(tickets), completion_tokens))
        yield "data: [DONE]\n\n"
    finally:
        app.state.listening.discard(queue)
        for ticket in tickets:  # a client that went away: its rows leave the batch before the next step
            ticket.cancel()


class _Counted:
    """ASGI middleware: each HTTP request is counted by route and status once answered."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]  # what a client sees when the application fails before answering

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(route_of(scope["path"]), str(status[0])).inc()
