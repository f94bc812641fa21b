"""The Python API: `rnngen.load(...)` gives a `Model` that completes, streams and scores text.

It is the CLI's own completion path (`generation.loading.load_completer`, the same sampling), loaded once:

    import rnngen
    model = rnngen.load("checkpoints/notes-gru")      # a run folder or name, a .safetensors file, or "hf:user/name"
    model.complete("Studying Deep Learning is really", max_tokens=50, temperature=0.8, seed=1)
    for piece in model.stream("The gradient", top_p=0.9):
        print(piece, end="")
    model.score("Some text")                          # bits per character of the text under the model
    state = model.read(document)                      # read a text once...
    model.complete("Question: why?", after=state)     # ...and complete after it many times, reading only the rest
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnngen.config import SampleConfig
from rnngen.errors import RnngenError, param
from rnngen.generation.read_state import TextState


class Model:
    """A trained model, loaded once; build it with `rnngen.load`.

    `run` is the model's folder (config.json, tokenizer.model), `path` the checkpoint file, `config`
    the model's `ModelConfig`, `completer` the `Completer` the CLI uses too.
    """

    def __init__(self, completer: Any, run: Any, path: Path):
        self.completer, self.run, self.path = completer, run, path

    def __repr__(self) -> str:
        model = self.run.config()["model"]
        return f"<rnngen.Model {model['kind']} {model['layers']}x{model['hidden']} from {self.path}>"

    def complete(
        self,
        prompt: str = "",
        *,
        max_tokens: int = SampleConfig.max_tokens,
        temperature: float = SampleConfig.temperature,
        top_k: int = SampleConfig.top_k,
        top_p: float = SampleConfig.top_p,
        repetition_penalty: float = SampleConfig.repetition_penalty,
        seed: int | None = None,
        stop: str | tuple[str, ...] | list[str] | None = (),
        after: TextState | None = None,
    ) -> str:
        """The completion of `prompt` (without the prompt), as `rnngen complete` writes it.

        temperature 0 is greedy decoding; top_k 0 and top_p 1 switch those filters off; `seed` makes
        the sample reproducible; the completion ends at the end of a document, after `max_tokens`
        tokens, or before the first `stop` string (one string or several; None is none). `after` (a state from
        `read`) continues its text: the completion of that text followed by `prompt`, to the last bit, reading only
        `prompt`.
        """
        return "".join(
            self.stream(
                prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                stop=stop,
                after=after,
            )
        )

    def stream(self, prompt: str = "", after: TextState | None = None, **options: Any) -> Iterator[str]:
        """The completion of `prompt` as it is written, piece by piece; the options are `complete`'s keywords, checked
        at the call (not at the first piece)."""
        return iter(
            self.completer.complete(
                _text("prompt", prompt), sample_config(**options), after=_state("after", after, self.completer)
            )
        )

    def read(self, text: str, after: TextState | None = None) -> TextState:
        """The model after reading `text` from the start of a document (or after `after`'s text), to complete from
        many times: `model.complete("question", after=state)` writes what `model.complete(text + "question")`
        writes, at a seed to the last bit, and reads only the question. The state holds a few kilobytes however
        long the text; `after` reads more text after an earlier state (a growing document, a chat's turns)."""
        return self.completer.read(_text("text", text), _state("after", after, self.completer))

    def score(self, text: str) -> float:
        """Bits per character of `text` under the model, read as a document from its start: the total
        negative log-likelihood of its tokens, in bits, over its characters (what `rnngen evaluate`
        reports for a corpus split). Lower is better; it compares across tokenizers. Text a word tokenizer
        cannot spell costs 8 bits per byte on top of its unknown piece, so unknown text never scores well."""
        if not _text("text", text):
            raise RnngenError("score needs some text: an empty text has no characters to score")
        return self.completer.bits_per_character(text)


def _text(name: str, value: Any) -> str:
    """`value`, refused unless it is text (bytes are decoded by the caller, who knows their encoding)."""
    if not isinstance(value, str):
        hint = ": decode it first, e.g. value.decode('utf-8')" if isinstance(value, (bytes, bytearray)) else ""
        raise RnngenError(f"{param(name)} must be a string, got {type(value).__name__}{hint}")
    return value


def _state(name: str, value: Any, completer: Any) -> TextState | None:
    """`value`, refused unless it is None or a state this model read (another model's state means nothing here)."""
    if value is None:
        return None
    if not isinstance(value, TextState):
        raise RnngenError(f"{param(name)} must be a state from Model.read, got {type(value).__name__}")
    if value.model is not completer.lm:
        raise RnngenError(f"{param(name)} is a state of another model: read the text with this one")
    return value


def sample_config(*, stop: str | tuple[str, ...] | list[str] | None = (), **options: Any) -> SampleConfig:
    """The `SampleConfig` of the sampling options that `Model.complete`, `rnngen complete` and `rnngen chat` take:
    `SampleConfig`'s fields as keywords, `stop` one string, several, or None for none. An option out of range is
    refused with its name."""
    unknown = sorted(set(options) - set(SampleConfig.__dataclass_fields__))
    if unknown:
        fields = ", ".join(sorted(SampleConfig.__dataclass_fields__))
        raise RnngenError(f"unknown sampling option {', '.join(param(name) for name in unknown)}: choose from {fields}")
    if not (stop is None or isinstance(stop, (str, list, tuple))):
        raise RnngenError(f"{param('stop')} must be a string, a list of strings or None, got {type(stop).__name__}")
    return SampleConfig(stop=(stop,) if isinstance(stop, str) else tuple(stop or ()), **options)


def load(checkpoint: str | os.PathLike, device: str = "cpu", checkpoints_dir: str | os.PathLike | None = None) -> Model:
    """A trained model for completing and scoring text.

    `checkpoint` is a run folder, a run name under `checkpoints_dir` (default: $RNNGEN_CHECKPOINTS, else
    ./checkpoints), a .safetensors file, or `hf:USER/NAME[@REVISION]` from the Hugging Face Hub. On the
    CPU (`device="cpu"`) the model runs in NumPy; "cuda", "mps" or "auto" run it with torch.
    Raises `rnngen.errors.RnngenError` (with the fix in its message) when it cannot be loaded.
    """
    from rnngen.generation.loading import load_completer
    from rnngen.store.locations import checkpoints_dir as default_checkpoints

    return Model(*load_completer(str(checkpoint), default_checkpoints(checkpoints_dir), device))
