"""Recurrent language models. Config in, `(logits, state)` out; no I/O, no printing."""

from rnngen.models.recurrent import RecurrentLM
from rnngen.models.state import State, detach_state

__all__ = ["RecurrentLM", "State", "detach_state", "build"]


def build(config) -> RecurrentLM:
    """The model a `ModelConfig` describes."""
    return RecurrentLM(config)
