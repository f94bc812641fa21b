"""rnngen: recurrent language models (RNN, LSTM, GRU) from any Hugging Face text corpus.

    import rnngen
    model = rnngen.load("checkpoints/notes-gru")      # a run, a .safetensors file, or "hf:user/name"
    model.complete("Studying Deep Learning is really", max_tokens=50, temperature=0.8, seed=1)
    model.score("Some text")                          # bits per character
    rnngen.prepare("notes.txt", tokenizer="char", name="notes")
    rnngen.train("notes", time_budget=600, name="notes-lstm")
    rnngen.evaluate("notes-lstm").val_bpc             # bits per character on the run's validation split

`import rnngen` loads nothing heavy: `rnngen.api` (load, Model), `rnngen.pipeline` (prepare, train) and
`rnngen.evaluation` (evaluate) load at their first use, the way the CLI loads a command's module, and CPU
completion needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Model", "__version__", "evaluate", "load", "prepare", "train"]
# Loaded at first use, so that `import rnngen` stays light.
API = {
    "Model": "rnngen.api",
    "load": "rnngen.api",
    "evaluate": "rnngen.evaluation",
    "prepare": "rnngen.pipeline",
    "train": "rnngen.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module(API[name]), name)
    raise AttributeError(f"module 'rnngen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
