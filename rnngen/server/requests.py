"""What a client may send: OpenAI's completion and chat requests, checked into rnngen's own options.

Every field OpenAI defines that rnngen honours is read; one it cannot honour is refused with a 400 that names it,
never ignored: `presence_penalty`, `frequency_penalty` and `logit_bias` only at their neutral values, `best_of` only
equal to `n`. rnngen's own `top_k` and `repetition_penalty` are accepted as extra fields. A field left out takes the
value `rnngen complete` takes (temperature 0.8, 200 tokens), so one seed gives the text `rnngen complete` writes.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rnngen.api import sample_config
from rnngen.config import SampleConfig
from rnngen.data.tokenizer import utf8_safe
from rnngen.errors import RnngenError

# Bounds on what one request may ask: a body, a prompt, its choices and tokens stay within what one CPU serves.
MAX_BODY_BYTES = 1_000_000
MAX_PROMPT_CHARS = 100_000
MAX_PROMPTS = 64
MAX_CHOICES = 16
MAX_TOKENS = 4096
MAX_STOPS = 4
MAX_ALTERNATIVES = 20
MAX_MESSAGES = 256


class BadRequest(Exception):
    """A request the server refuses: `status`, the message, and the field it names (`param`)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


class _Strict(BaseModel):
    # No field is converted from another type ("5" is not 5) and none goes unread.
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    """The fields both routes share."""

    model: str
    # The sampling options are checked where every caller's are, by `SampleConfig`: its message names the field.
    temperature: float | None = None
    top_p: float | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None  # who asks, for the caller's own records: it changes nothing here
    top_k: int | None = None
    repetition_penalty: float | None = None

    def sample_config(self, max_tokens: int | None) -> SampleConfig:
        """rnngen's options for this request; a neutral-only OpenAI field at another value is refused by name."""
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) != 0:
                raise BadRequest(f"{name} is not supported: use repetition_penalty (1 is off)", name)
        if self.logit_bias:
            raise BadRequest("logit_bias is not supported", "logit_bias")
        stops = [utf8_safe(stop) for stop in ([self.stop] if isinstance(self.stop, str) else self.stop or [])]
        if len(stops) > MAX_STOPS:
            raise BadRequest(f"stop takes at most {MAX_STOPS} strings, got {len(stops)}", "stop")
        given = {
            name: value
            for name, value in {
                "max_tokens": max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "top_k": self.top_k,
                "repetition_penalty": self.repetition_penalty,
            }.items()
            if value is not None
        }
        try:
            return sample_config(stop=stops, seed=self.seed, **given)
        except RnngenError as exc:
            raise BadRequest(str(exc), _named(str(exc))) from exc


class CompletionRequest(_Sampling):
    """POST /v1/completions."""

    prompt: str | list[str] = ""
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    logprobs: int | None = Field(None, ge=0, le=MAX_ALTERNATIVES)
    echo: bool = False
    best_of: int | None = Field(None, ge=1, le=MAX_CHOICES)
    suffix: None = None

    @property
    def prompts(self) -> list[str]:
        # JSON may carry lone surrogates ("\ud800"), which are no text: read as U+FFFD, as the command line does.
        prompts = [utf8_safe(self.prompt)] if isinstance(self.prompt, str) else [utf8_safe(p) for p in self.prompt]
        if not 1 <= len(prompts) <= MAX_PROMPTS:
            raise BadRequest(f"prompt takes 1 to {MAX_PROMPTS} strings, got {len(prompts)}", "prompt")
        if any(len(prompt) > MAX_PROMPT_CHARS for prompt in prompts):
            raise BadRequest(f"a prompt may hold at most {MAX_PROMPT_CHARS:,} characters", "prompt")
        if self.best_of not in (None, self.n):
            raise BadRequest("best_of is not supported apart from best_of = n", "best_of")
        if self.echo and self.logprobs is not None:
            raise BadRequest("echo with logprobs is not supported: rnngen gives logprobs of generated tokens", "echo")
        return prompts


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_ALTERNATIVES)

    @property
    def running_text(self) -> str:
        """The messages as one running text: their contents in order, as `rnngen chat --keep` reads its turns."""
        text = utf8_safe("".join(message.text for message in self.messages))
        if len(text) > MAX_PROMPT_CHARS:
            raise BadRequest(f"the messages may hold at most {MAX_PROMPT_CHARS:,} characters", "messages")
        return text

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class _Served(_Strict):
    """A request of the operators' routes: `model` may be left out where one model is served."""

    model: str | None = None

    def model_id(self, models: list[Any]) -> str:
        if self.model is not None:
            return self.model
        if len(models) > 1:
            raise BadRequest(f"{len(models)} models are served here: name one with model", "model")
        return models[0].id


class TokenizeRequest(_Served):
    """POST /tokenize, as llama.cpp (`content`, `add_special`, `with_pieces`) or vLLM (`prompt` or `messages`,
    `add_special_tokens`, `return_token_strs`) send it."""

    content: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = Field(None, min_length=1, max_length=MAX_MESSAGES)
    add_special: bool | None = None
    add_special_tokens: bool | None = None
    with_pieces: bool = False
    return_token_strs: bool = False

    @property
    def text(self) -> str:
        given = [name for name in ("content", "prompt", "messages") if getattr(self, name) is not None]
        if len(given) != 1:
            raise BadRequest("send the text as one of content, prompt or messages", "content")
        if self.messages is not None:
            return utf8_safe("".join(message.text for message in self.messages))
        return utf8_safe(self.content if self.content is not None else self.prompt)

    @property
    def special(self) -> bool:
        """Whether the start of a document is counted in (what a completion reads before its prompt)."""
        return bool(self.add_special if self.add_special is not None else self.add_special_tokens)


class DetokenizeRequest(_Served):
    """POST /detokenize: `tokens`, as llama.cpp and vLLM send them."""

    tokens: list[int] = Field(max_length=MAX_BODY_BYTES // 2)


def parse(body: bytes, kind: type[_Strict]) -> Any:
    """The request `kind` in `body`, or `BadRequest` naming what is wrong: not UTF-8, not JSON, not an object, or a
    field of the wrong type, out of range or unknown."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("the body is not valid JSON: it nests too deeply") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        return kind.model_validate(data)
    except RecursionError as exc:
        raise BadRequest("the body nests too deeply") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        if error["type"] == "extra_forbidden":
            raise BadRequest(f"{field} is not a field rnngen supports", field) from exc
        where = ".".join(str(part) for part in error["loc"] if part not in ("str", "list[str]", "list[TextPart]"))
        raise BadRequest(f"{where or 'the body'}: {error['msg']}", field) from exc


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _named(message: str) -> str | None:
    """The option a sampling error names (its message starts with it)."""
    first = message.split(" ", 1)[0]
    return first if first in SampleConfig.__dataclass_fields__ else None
