"""What the server answers, in OpenAI's shapes: completions, chat completions, their streamed chunks, errors.

The shapes follow OpenAI's API reference, so that its official clients read them unchanged: `text_completion`
objects with legacy `logprobs` (tokens, token_logprobs, top_logprobs, text_offset), `chat.completion` objects with
per-token `logprobs.content`, `*.chunk` objects for server-sent events, and errors as
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rnngen.generation.decoding import TokenStep

FINISH = {"max_tokens": "length", "end_of_text": "stop", "stop": "stop"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


def error_body(message: str, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An OpenAI error object."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def logprob(prob: float) -> float:
    """ln p, finite: a probability that underflowed to 0 is read as the smallest float32 one."""
    return math.log(max(prob, 1e-45))


@dataclass
class Choice:
    """One choice of a response as it is written: its text, its tokens, and why it ended."""

    index: int
    prefix: str = ""  # the prompt, when the request asked for it back (`echo`)
    text: str = ""
    steps: list[TokenStep] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None  # why decoding failed, when it did
    offset: int = 0  # characters of the tokens already sent (streaming), for text_offset

    @property
    def finish_reason(self) -> str | None:
        return FINISH[self.reason] if self.reason else None

    def shown_steps(self) -> list[TokenStep]:
        """The tokens that wrote the returned text: a stop string's own tokens are not part of it."""
        shown, length = [], 0
        for step in self.steps:
            if length >= len(self.text) and self.reason == "stop":
                break
            shown.append(step)
            length += len(step.text)
        return shown


class Reply:
    """The identity of one response (its id, time and model) and the shapes of its parts."""

    def __init__(self, model: str, chat: bool):
        self.model, self.chat = model, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _object(self, kind: str, choices: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return body

    def whole(
        self, choices: list[Choice], prompt_tokens: int, cached_tokens: int, alternatives: int | None
    ) -> dict[str, Any]:
        """The response to a request that did not stream."""
        usage = _usage(prompt_tokens, cached_tokens, sum(len(choice.steps) for choice in choices))
        if self.chat:
            return self._object(
                "chat.completion",
                [
                    {
                        "index": c.index,
                        "message": {"role": "assistant", "content": c.text},
                        "logprobs": _chat_logprobs(c.shown_steps()) if alternatives is not None else None,
                        "finish_reason": c.finish_reason,
                    }
                    for c in choices
                ],
                usage,
            )
        return self._object(
            "text_completion",
            [
                {
                    "index": c.index,
                    "text": c.prefix + c.text,
                    "logprobs": _completion_logprobs(c.shown_steps(), len(c.prefix))
                    if alternatives is not None
                    else None,
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            usage,
        )

    def chunk(
        self, choice: Choice, text: str, steps: list[TokenStep], alternatives: int | None, first: bool = False
    ) -> dict[str, Any]:
        """A streamed piece of one choice: its new text, the logprobs of its new tokens, and the finish reason when
        it ended."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {"content": text}
            part = {
                "index": choice.index,
                "delta": delta,
                "logprobs": _chat_logprobs(steps) if alternatives is not None else None,
                "finish_reason": choice.finish_reason,
            }
            return self._object("chat.completion.chunk", [part], None)
        part = {
            "index": choice.index,
            "text": text,
            "logprobs": _completion_logprobs(steps, choice.offset) if alternatives is not None else None,
            "finish_reason": choice.finish_reason,
        }
        return self._object("text_completion", [part], None)

    def usage_chunk(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """The last streamed chunk with `stream_options.include_usage`: no choices, the usage."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return self._object(kind, [], _usage(prompt_tokens, cached_tokens, completion_tokens))


def _usage(prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's usage: the prompt's tokens (`cached_tokens` of them resumed from the state cache, not read) and the
    completion's."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _completion_logprobs(steps: list[TokenStep], offset: int) -> dict[str, Any]:
    offsets = []
    for step in steps:
        offsets.append(offset)
        offset += len(step.text)
    return {
        "tokens": [step.text for step in steps],
        "token_logprobs": [logprob(step.prob) for step in steps],
        "top_logprobs": [{text: logprob(prob) for text, prob in step.alternatives} for step in steps],
        "text_offset": offsets,
    }


def _chat_logprobs(steps: list[TokenStep]) -> dict[str, Any]:
    def token(text: str, prob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob(prob), "bytes": list(text.encode("utf-8"))}

    return {
        "content": [
            {**token(step.text, step.prob), "top_logprobs": [token(text, prob) for text, prob in step.alternatives]}
            for step in steps
        ]
    }
