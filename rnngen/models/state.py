"""The recurrent state carried from one window (or token) to the next.

RNN, GRU, minGRU and minLSTM carry one array h; the LSTM carries the pair (h, c). Every array is
[layers, batch, hidden], so batch rows are dimension 1. These helpers treat both shapes alike, so
no caller has to ask which one it holds, and importing them loads no torch: the same helpers serve the torch
model's tensors and NumPy completion's arrays (`rnngen.generation`), whose beams are batch rows too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import torch

State: TypeAlias = "torch.Tensor | tuple[torch.Tensor, ...]"


def map_state(state: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn` applied to every array of the state (torch tensors or NumPy arrays); None stays None."""
    if state is None:
        return None
    return tuple(fn(part) for part in state) if isinstance(state, tuple) else fn(state)


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a carried state: truncated backpropagation through time. The state is carried, and saved
    with a run, in float32 whatever the arithmetic that made it (bf16 under autocast): a run's checkpoint holds the
    same tensors in either precision, and a resumed run may change its precision."""
    return map_state(state, lambda part: part.detach().float())


def state_to(state: State | None, device: torch.device | str) -> State | None:
    """The state on `device`."""
    return map_state(state, lambda part: part.to(device))


def select_rows(state: Any, rows: Sequence[int]) -> Any:
    """Batch rows `rows` of the state, in that order and repeated as listed (a beam search's surviving beams, a
    rank's share of a batch), as new contiguous arrays: torch tensors or NumPy arrays."""
    rows = list(rows)  # indexing with a list copies on both backends, where a slice would be a view
    return map_state(state, lambda part: part[:, rows])


def join_rows(first: Any, second: Any) -> Any:
    """One state whose batch rows are `first`'s, then `second`'s (a completion joining a batch in flight), on
    either backend."""
    if isinstance(first, tuple):
        return tuple(join_rows(a, b) for a, b in zip(first, second))
    if isinstance(first, np.ndarray):
        return np.concatenate([first, second], axis=1)
    import torch  # here only for torch's states: torch is loaded already

    return torch.cat([first, second], dim=1)


def hidden_of(state: Any) -> Any:
    """h of the state: the state itself, or the first of the LSTM's pair (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def state_rows(state: Any) -> int:
    """How many batch rows the state holds."""
    return hidden_of(state).shape[1]
