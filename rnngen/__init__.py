"""rnngen: recurrent language models (RNN, LSTM, GRU) from any Hugging Face text corpus.

    import rnngen
    model = rnngen.load("checkpoints/notes-gru")      # a run, a .safetensors file, or "hf:user/name"
    model.complete("Studying Deep Learning is really", max_tokens=50, temperature=0.8, seed=1)
    model.score("Some text")                          # bits per character

`import rnngen` loads nothing heavy: the API module loads at the first use of `rnngen.load` or
`rnngen.Model`, the way the CLI loads a command's module, and CPU completion needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Model", "__version__", "load", "prepare", "train"]
API = ("Model", "load", "prepare", "train")  # loaded from rnngen.api at first use


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module("rnngen.api"), name)
    raise AttributeError(f"module 'rnngen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
