"""What a model holds after reading some text: where a completion or a beam search starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelMemory:
    """What the model remembers after some text: the next-token logits and the recurrent state."""

    logits: Any  # [vocab], a NumPy array or a torch tensor
    state: Any
