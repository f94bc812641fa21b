"""The recurrent state carried from one window (or token) to the next.

RNN, GRU, minGRU and minLSTM carry one tensor h; the LSTM carries the pair (h, c). Every tensor is
[layers, batch, hidden], so batch rows are dimension 1. These helpers treat both shapes alike, so
no caller has to ask which one it holds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

State = torch.Tensor | tuple[torch.Tensor, ...]


def map_state(state: State | None, fn: Callable[[torch.Tensor], torch.Tensor]) -> State | None:
    """`fn` applied to every tensor of the state; None stays None."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(fn(part) for part in state)


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a carried state: truncated backpropagation through time."""
    return map_state(state, torch.Tensor.detach)


def state_to(state: State | None, device: torch.device | str) -> State | None:
    """The state on `device`."""
    return map_state(state, lambda part: part.to(device))


def slice_rows(state: State | None, start: int, stop: int) -> State | None:
    """Batch rows [start, stop) of the state, as contiguous tensors."""
    return map_state(state, lambda part: part[:, start:stop].contiguous())


def hidden_of(state: State) -> torch.Tensor:
    """h of the state: the state itself, or the first of the LSTM's pair (h, c)."""
    return state if isinstance(state, torch.Tensor) else state[0]


def state_rows(state: State) -> int:
    """How many batch rows the state holds."""
    return hidden_of(state).size(1)
