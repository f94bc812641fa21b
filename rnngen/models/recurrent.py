"""Embedding -> fused recurrent layers (nn.RNN / nn.LSTM / nn.GRU) -> linear head.

With `impl="scratch"` the layers are the lecture's cells from `rnngen.models.scratch`, unrolled
in Python. Otherwise training and prompt priming use PyTorch's fused layers (cuDNN on GPU, oneDNN on
CPU). Decoding one token at a time on the CPU uses `rnngen.generation.numpy_lm`, the same maths
written out in NumPy on the same weights.

The equations PyTorch computes (gate order as in its weight layout):
  RNN:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      (the lecture's RNN)
  LSTM: i, f, g, o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t)
        (the standard cell: no sigmoid around c_t, unlike the lecture's slide)
  GRU:  r, z, n = split(W_ih x_t + b_ih), split(W_hh h_{t-1} + b_hh)
        n_t = tanh(n_x + r * n_h)  -- the reset gate applied AFTER the matrix product (cuDNN's variant)
        h_t = (1 - z) * n_t + z * h_{t-1}  -- z keeps the old state, as Cho et al. 2014 do (the lecture's
        h_t = (1 - z) * h_{t-1} + z * h'_t is Chung et al. 2014's direction: see models/scratch.py)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnngen.config import MIN_KINDS, ModelConfig
from rnngen.models.minimal import MinRecurrent
from rnngen.models.scratch import ScratchRecurrent
from rnngen.models.state import State

_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def recurrent_layers(config: ModelConfig) -> tuple[nn.Module, int]:
    """The recurrent stack `config` describes (input of size `config.embed`, batch first) and its output size."""
    dropout = config.dropout if config.layers > 1 else 0.0
    if config.kind in MIN_KINDS:
        # Residual blocks: the stack's output has the embedding's size.
        return MinRecurrent(config.kind, config.embed, config.hidden, config.layers, config.dropout), config.embed
    if config.impl == "scratch":
        return ScratchRecurrent(config.kind, config.embed, config.hidden, config.layers, dropout), config.hidden
    layer_kwargs = {"nonlinearity": "tanh"} if config.kind == "rnn" else {}
    layers = _LAYERS[config.kind](
        config.embed, config.hidden, num_layers=config.layers, batch_first=True, dropout=dropout, **layer_kwargs
    )
    return layers, config.hidden


class RecurrentLM(nn.Module):
    """A recurrent language model: p(x_{t+1} | x_1..x_t) = softmax(W_y h_t)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.rnn, out_size = recurrent_layers(config)
        self.drop = nn.Dropout(config.dropout)
        # Tying the head to the embedding (Press & Wolf 2017; Inan et al. 2017) saves parameters and
        # helps small models; when the sizes differ, a projection maps hidden to embedding size.
        self.proj = nn.Linear(out_size, config.embed, bias=False) if config.tie and out_size != config.embed else None
        self.head = nn.Linear(config.embed if config.tie else out_size, config.vocab_size)
        if config.tie:
            self.head.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self) -> None:
        # pytorch/examples' word_language_model: embedding and head uniform in ±0.1, head bias 0 (a new run then
        # starts it at the text's unigram distribution: `start_from_counts`); the recurrent layers keep PyTorch's
        # own init. No forget-gate bias of 1 (Gers et al. 2000): training carries the state
        # across windows without end, and with the gate that open the cells integrate their input until tanh(c)
        # passes no gradient (docs/tuning.md, "Why the preset first lost to the plain loop").
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if not self.config.tie:
            nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    @torch.no_grad()
    def start_from_counts(self, counts: np.ndarray) -> None:
        """Start the head's bias at the log unigram distribution of `counts` (each token's count in the training
        text), so that the first prediction is the text's unigram distribution, not a uniform one over the
        vocabulary: pieces the text never uses (a char vocabulary's byte pieces) cost nothing from the first step,
        where a zero bias leaves them probability that AdamW takes hundreds of steps to remove (Karpathy's "init
        well"). Half a count each keeps unseen pieces finite; computed in float64 on the host (MPS has none)."""
        smoothed = np.asarray(counts, dtype=np.float64) + 0.5
        log_unigram = torch.from_numpy(np.log(smoothed / smoothed.sum()))
        self.head.bias.copy_(log_unigram.to(self.head.bias.device, self.head.bias.dtype))

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The zero state of a batch."""
        zeros = torch.zeros(self.config.layers, batch, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.kind == "lstm" else zeros

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head: hidden states of the last layer -> logits over the vocabulary."""
        hidden = self.drop(hidden)
        if self.proj is not None:
            hidden = self.proj(hidden)
        return self.head(hidden)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids [batch, time] -> logits [batch, time, vocab] and the state after the last step."""
        out, state = self.rnn(self.embedding(ids), state)
        return self.logits(out), state
