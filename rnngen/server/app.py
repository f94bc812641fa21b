"""The ASGI application (FastAPI): OpenAI's routes, the health check and the web page, over one scheduler a model.

Each model has a `Scheduler` (continuous batching) running in its own thread. A request becomes one ticket a prompt;
the scheduler hands every step's updates to the event loop in one call (`call_soon_threadsafe`), which puts each on
its request's queue. A streamed response sends what has arrived each time it wakes, so a client slower than the
model gets several tokens a chunk rather than falling behind; a client that goes away cancels its tickets, and
their rows leave the batch before the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from rnngen.generation.completer import Completer
from rnngen.generation.scheduler import MAX_BATCH, MAX_QUEUE, Busy, Closing, Scheduler, Ticket, TooLarge, Update
from rnngen.server.requests import MAX_BODY_BYTES, BadRequest, ChatRequest, CompletionRequest, parse
from rnngen.server.responses import Choice, Reply, error_body

OPEN_PATHS = ("/", "/health")  # the page holds no data (its requests carry the key) and a health check needs none
RETRY_AFTER_SECONDS = 1
DISCONNECT_CHECK_SECONDS = 0.5  # how often a request that does not stream asks whether its client is still there


@dataclass(frozen=True)
class ServedModel:
    """A model the server serves: its id (the run's name), its completer, and when its checkpoint was written."""

    id: str
    completer: Completer
    created: int


def create_app(
    models: list[ServedModel], api_key: str | None = None, max_batch: int = MAX_BATCH, max_queue: int = MAX_QUEUE
) -> FastAPI:
    """The application serving `models`; with `api_key`, every route but the page and /health needs
    `Authorization: Bearer API_KEY`."""
    schedulers: dict[str, Scheduler] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def deliver(updates: list[tuple[Ticket, Update]]) -> None:
            loop.call_soon_threadsafe(_dispatch, updates)

        for model in models:
            schedulers[model.id] = Scheduler(model.completer, deliver, max_batch, max_queue)
        yield
        for scheduler in schedulers.values():
            await asyncio.to_thread(scheduler.close)

    app = FastAPI(title="rnngen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.schedulers = schedulers
    if api_key:
        app.add_middleware(_BearerKey, key=api_key)

    @app.exception_handler(BadRequest)
    async def refused(request: Request, exc: BadRequest) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 429 else None
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
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": {
                name: {"rows": s.rows, "waiting": s.waiting, "steps": s.steps, "tokens": s.tokens}
                for name, s in schedulers.items()
            },
        }

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model) for model in models]}

    @app.get("/v1/models/{model_id:path}")
    async def one_model(model_id: str) -> dict[str, Any]:
        return _model_card(_served(models, model_id))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        req = parse(await _body(request), CompletionRequest)
        model = _served(models, req.model)
        cfg, prompts = req.sample_config(req.max_tokens), req.prompts
        tickets = [Ticket(prompt, cfg, req.n, req.logprobs or 0) for prompt in prompts]
        shapes = Reply(model.id, chat=False)
        prefixes = prompts if req.echo else None
        return await _respond(request, schedulers[model.id], tickets, shapes, req, req.logprobs, prefixes)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = parse(await _body(request), ChatRequest)
        model = _served(models, req.model)
        cfg = req.sample_config(req.token_limit)
        alternatives = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs is not None and not req.logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", "top_logprobs")
        tickets = [Ticket(req.running_text, cfg, req.n, alternatives or 0)]
        return await _respond(request, schedulers[model.id], tickets, Reply(model.id, chat=True), req, alternatives)

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
    is declared)."""
    declared = request.headers.get("content-length", "")
    too_large = BadRequest(f"the body is larger than {MAX_BODY_BYTES:,} bytes", None, 413, "request_too_large")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


async def _respond(
    request: Request,
    scheduler: Scheduler,
    tickets: list[Ticket],
    shapes: Reply,
    req: Any,
    alternatives: int | None,
    prefixes: list[str] | None = None,
) -> Response:
    """Submit the tickets and answer: a stream of server-sent events, or one JSON object once every choice ended."""
    queue: asyncio.Queue[tuple[Ticket, Update]] = asyncio.Queue()
    for ticket in tickets:
        ticket.listener = queue
    try:
        scheduler.submit(tickets)
    except Busy as exc:
        raise BadRequest(str(exc), None, 429, "rate_limit_exceeded") from exc
    except Closing as exc:
        raise BadRequest(str(exc), None, 503, "shutting_down") from exc
    except TooLarge as exc:
        raise BadRequest(str(exc), exc.field) from exc
    choices = {
        (id(ticket), choice): Choice(number * ticket.choices + choice, prefixes[number] if prefixes else "")
        for number, ticket in enumerate(tickets)
        for choice in range(ticket.choices)
    }
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = _stream(queue, tickets, choices, shapes, alternatives, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        await _gather(request, queue, choices)
    finally:
        for ticket in tickets:
            ticket.cancel()
    failed = [choice.error for choice in choices.values() if choice.error]
    if failed:
        return JSONResponse(error_body(failed[0], 500), 500)
    ordered = sorted(choices.values(), key=lambda choice: choice.index)
    return JSONResponse(shapes.whole(ordered, sum(ticket.prompt_tokens for ticket in tickets), alternatives))


def _apply(choices: dict[tuple[int, int], Choice], ticket: Ticket, update: Update) -> Choice:
    choice = choices[(id(ticket), update.choice)]
    choice.text += update.text
    choice.steps += update.steps
    if update.error is not None:
        choice.reason, choice.error = "stop", update.error
    elif update.reason is not None:
        choice.reason = update.reason
    return choice


async def _gather(request: Request, queue: asyncio.Queue, choices: dict[tuple[int, int], Choice]) -> None:
    """Wait until every choice ended; a client that went away stops the wait (its tickets are then cancelled): it is
    asked about every `DISCONNECT_CHECK_SECONDS`, whether updates come or not."""
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while any(choice.reason is None for choice in choices.values()):
        with contextlib.suppress(asyncio.TimeoutError):
            ticket, update = await asyncio.wait_for(queue.get(), timeout=DISCONNECT_CHECK_SECONDS)
            _apply(choices, ticket, update)
        if loop.time() - checked >= DISCONNECT_CHECK_SECONDS:
            checked = loop.time()
            if await request.is_disconnected():
                return


async def _stream(
    queue: asyncio.Queue,
    tickets: list[Ticket],
    choices: dict[tuple[int, int], Choice],
    shapes: Reply,
    alternatives: int | None,
    include_usage: bool,
) -> AsyncIterator[str]:
    """Server-sent events: one chunk per choice each time updates arrive, then usage (when asked) and [DONE]."""

    def event(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        for choice in choices.values():
            if shapes.chat or choice.prefix:  # the assistant's role, or the prompt given back (`echo`), first
                yield event(shapes.chunk(choice, choice.prefix, [], alternatives, first=True))
                choice.offset = len(choice.prefix)
        while any(choice.reason is None for choice in choices.values()):
            arrived = [await queue.get()]
            while not queue.empty():
                arrived.append(queue.get_nowait())
            fresh: dict[int, tuple[Choice, str, list]] = {}
            for ticket, update in arrived:
                choice = _apply(choices, ticket, update)
                _, text, steps = fresh.get(choice.index, (choice, "", []))
                fresh[choice.index] = (choice, text + update.text, steps + update.steps)
            for choice, text, steps in fresh.values():
                if choice.error:
                    yield event(error_body(choice.error, 500))
                elif text or steps or choice.reason:
                    yield event(shapes.chunk(choice, text, steps, alternatives))
                    # Offsets count the tokens' text: a stop string's hold-back sends text later than its tokens.
                    choice.offset += sum(len(step.text) for step in steps)
        if include_usage:
            completion_tokens = sum(len(choice.steps) for choice in choices.values())
            yield event(shapes.usage_chunk(sum(ticket.prompt_tokens for ticket in tickets), completion_tokens))
        yield "data: [DONE]\n\n"
    finally:
        for ticket in tickets:  # a client that went away: its rows leave the batch before the next step
            ticket.cancel()


class _BearerKey:
    """ASGI middleware: requests but the open paths need `Authorization: Bearer KEY`, compared in constant time."""

    def __init__(self, app: Callable, key: str):
        self.app, self.key = app, f"Bearer {key}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.key):
                message = "a missing or wrong API key: send the header Authorization: Bearer YOUR_KEY"
                response = JSONResponse(error_body(message, 401, None, "invalid_api_key"), 401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
