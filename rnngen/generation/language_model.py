"""What completion asks of a model: the interface `NumpyLM` (the CPU) and `TorchLM` (GPUs) both meet."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from rnngen.config import ModelConfig


@runtime_checkable
class LanguageModel(Protocol):
    """A recurrent language model on one backend's arrays (NumPy arrays or torch tensors).

    States are the backend's: h [layers, batch, hidden], or the LSTM's (h, c).
    """

    config: ModelConfig
    ops: Any  # the backend's array operations (`rnngen.generation.arrays`), for sampling and beam search

    # States after this many tokens of a document (and multiples) are the same bits in every read of it, however
    # the read was cut or wherever it resumed: where a kept state may be resumed from.
    exact_every: int

    def prime(self, ids: list[int], state: Any = None, position: int = 0) -> tuple[Any, Any]:
        """Feed a prompt (at least one id) to one row: the next-token logits [vocab] and the state after it."""
        ...

    def read(
        self, ids: list[int], state: Any = None, position: int = 0, keep: int | None = None
    ) -> tuple[Any, Any, Any]:
        """Feed `ids` (at least one) to one row from `state`, ids[0] standing at `position` in its document: the
        next-token logits [vocab], the state after them, and the state after the first `keep` of them (a multiple of
        `exact_every` from the document's start, or all of them), else None. The one priming path."""
        ...

    def logits_after_each(self, ids: list[int], state: Any = None) -> tuple[np.ndarray, Any]:
        """Feed up to `PRIME_CHUNK` ids to one row: the next-token logits after each, as a float32 NumPy
        array [len(ids), vocab], and the state."""
        ...

    def step(self, ids: Any, state: Any) -> tuple[Any, Any]:
        """Feed one token per row (ids [batch]): next-token logits [batch, vocab] and the new state."""
        ...

    def ids(self, values: list[int]) -> Any:
        """Token ids as the backend's integer array, where the model runs."""
        ...

    def flags(self, n: int) -> Any:
        """`n` False flags as the backend's boolean array, where the model runs."""
        ...

    def generator(self, seed: int | None) -> Any:
        """A random generator for sampling: seeded for reproducible samples, else from the OS."""
        ...
