"""What a model holds after reading some text: where a completion or a beam search starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReadState:
    """The model's state after reading some text: the next-token logits and the recurrent state.

    A completion continues from it: the end of a prompt, or of an earlier completion (a chat's running text).
    """

    logits: Any  # [vocab], a NumPy array or a torch tensor
    state: Any


@dataclass(frozen=True, eq=False)  # compared by identity: its arrays have no truth value
class TextState:
    """A text a model has read from the start of a document (`Model.read`, the running text of `rnngen chat --keep`).

    `ids` are the tokens it read (the document's start included) and `memory` the model after all of them. A longer
    text that starts with this one (a question after a document, the next turn of a chat) is tokenized whole, and
    resumes from `resume`, the state after the first `resume[0]` ids (all but the last, which the longer text may
    spell otherwise), when it tokenizes the same up to there: it then reads what a read of the whole text from the
    start reads, to the last bit.
    """

    text: str
    ids: tuple[int, ...]
    memory: ReadState
    resume: tuple[int, Any]
    model: Any = field(default=None, compare=False)  # the model that read it: its states mean nothing to another

    def __repr__(self) -> str:
        return f"<rnngen TextState of {len(self.text)} characters, {len(self.ids)} tokens>"
