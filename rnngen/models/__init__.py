"""Recurrent language models. Config in, `(logits, state)` out; no I/O, no printing.

The package loads torch with `RecurrentLM` at its first use: `rnngen.models.state` imports no torch, so that
NumPy completion shares its state helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rnngen.models.state import State, detach_state

if TYPE_CHECKING:
    from rnngen.models.recurrent import RecurrentLM

__all__ = ["RecurrentLM", "State", "detach_state", "build"]


def build(config) -> RecurrentLM:
    """The model a `ModelConfig` describes."""
    from rnngen.models.recurrent import RecurrentLM

    return RecurrentLM(config)


def __getattr__(name: str) -> Any:
    if name == "RecurrentLM":
        from rnngen.models.recurrent import RecurrentLM

        return RecurrentLM
    raise AttributeError(f"module 'rnngen.models' has no attribute {name!r}")
