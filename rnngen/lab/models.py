"""The models the lab trains: an input layer, rnngen's recurrent stack (or the attention reference), a head.

`LabModel` keeps the attribute names of `RecurrentLM` (`embedding`, `rnn`, `logits`, `config`), so
`rnngen.analysis.gradients.profile` measures it as it measures a language model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnngen.config import MODEL_KINDS, ModelConfig
from rnngen.errors import RnngenError, param
from rnngen.lab.attention import CausalAttention
from rnngen.models.initialise import initialise
from rnngen.models.recurrent import recurrent_layers

ATTENTION = "attention"
LAB_MODELS = (*MODEL_KINDS, ATTENTION)


@dataclass(frozen=True)
class Size:
    """How big the lab's models are: the input width, the recurrent state and the attention stack's depth."""

    width: int = 32
    hidden: int = 64
    layers: int = 1
    attention_layers: int = 2
    heads: int = 2


class LabModel(nn.Module):
    """Inputs [B, T] token ids (`tokens`; `inputs` is the vocabulary) or [B, T, inputs] floats -> [B, T, outputs].

    A recurrent stack's gate biases start as `init` (`rnngen.models.initialise`) for dependencies of up to `max_len`
    steps (chrono's T_max: the task's sequence length)."""

    def __init__(
        self, kind: str, inputs: int, outputs: int, size: Size, tokens: bool, max_len: int, init: str = "default"
    ):
        super().__init__()
        if kind not in LAB_MODELS:
            raise RnngenError(f"unknown {param('models')} {kind!r}: choose among {', '.join(LAB_MODELS)}")
        self.kind = kind
        self.embedding = nn.Embedding(inputs, size.width) if tokens else nn.Linear(inputs, size.width)
        if kind == ATTENTION:
            self.config = None
            self.rnn, out_size = CausalAttention(size.width, size.attention_layers, size.heads, max_len), size.width
        else:
            # The ModelConfig that gradients.profile reads, and that builds the stack as a language model's.
            self.config = ModelConfig(kind, embed=size.width, hidden=size.hidden, layers=size.layers, tie=False)
            self.rnn, out_size = recurrent_layers(self.config)
            initialise(self.rnn, kind, init, max_len)
        self.head = nn.Linear(out_size, outputs)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head: the stack's outputs -> the task's outputs."""
        return self.head(hidden)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(inputs))
        return self.logits(out)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
