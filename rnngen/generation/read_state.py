"""The model after reading some text: where a completion or a beam search starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ReadState:
    """The model's state after reading some text: the next-token logits and the recurrent state.

    A completion continues from it: the end of a prompt, or of an earlier completion (a chat's running text).
    """

    logits: Any  # [vocab], a NumPy array or a torch tensor
    state: Any
