"""Embedding -> fused recurrent layers (nn.RNN / nn.LSTM / nn.GRU) -> linear head.

With `impl="scratch"` the layers are the lecture's cells from `rnngen.models.scratch`, unrolled
in Python. Otherwise training and prompt priming use PyTorch's fused layers (cuDNN on GPU, oneDNN on CPU). Decoding one
token at a time on the CPU uses `StepDecoder`, the same maths written out on the same weights: on a
CPU a length-1 call of the fused layer costs several times the arithmetic (see shared PERF_NOTES),
and decoding is nothing but length-1 calls.

The equations PyTorch computes (gate order as in its weight layout):
  RNN:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      (the lecture's RNN)
  LSTM: i, f, g, o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t)
        (the standard cell: no sigmoid around c_t, unlike the lecture's slide)
  GRU:  r, z, n = split(W_ih x_t + b_ih), split(W_hh h_{t-1} + b_hh)
        n_t = tanh(n_x + r * n_h)  -- the reset gate applied AFTER the matrix product (cuDNN's variant)
        h_t = (1 - z) * n_t + z * h_{t-1}  -- z keeps the old state, the reverse of Cho et al. 2014
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import nn

from rnngen.config import MIN_KINDS, ModelConfig
from rnngen.models.minimal import MinRecurrent
from rnngen.models.scratch import ScratchRecurrent

# (h) for RNN and GRU, (h, c) for LSTM; each [layers, batch, hidden].
State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]

_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a carried state: truncated backpropagation through time."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


class RecurrentLM(nn.Module):
    """A recurrent language model: p(x_{t+1} | x_1..x_t) = softmax(W_y h_t)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        dropout = config.dropout if config.layers > 1 else 0.0
        out_size = config.hidden
        if config.kind in MIN_KINDS:
            # Residual blocks: the stack's output has the embedding's size.
            self.rnn = MinRecurrent(config.kind, config.embed, config.hidden, config.layers, config.dropout)
            out_size = config.embed
        elif config.impl == "scratch":
            self.rnn = ScratchRecurrent(config.kind, config.embed, config.hidden, config.layers, dropout)
        else:
            layer_kwargs = {"nonlinearity": "tanh"} if config.kind == "rnn" else {}
            self.rnn = _LAYERS[config.kind](config.embed, config.hidden, num_layers=config.layers, batch_first=True,
                                            dropout=dropout, **layer_kwargs)
        self.drop = nn.Dropout(config.dropout)
        # Tying the head to the embedding (Press & Wolf 2017; Inan et al. 2017) saves parameters and
        # helps small models; when the sizes differ, a projection maps hidden to embedding size.
        self.proj = nn.Linear(out_size, config.embed, bias=False) if config.tie and out_size != config.embed else None
        self.head = nn.Linear(config.embed if config.tie else out_size, config.vocab_size)
        if config.tie:
            self.head.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self) -> None:
        # Small embeddings: with a tied head, N(0, 1) rows would start with huge logits.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)
        if self.config.kind == "lstm":
            # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): remember by default.
            hidden = self.config.hidden
            for layer in range(self.config.layers):
                with torch.no_grad():
                    getattr(self.rnn, f"bias_ih_l{layer}")[hidden: 2 * hidden].fill_(1.0)
                    getattr(self.rnn, f"bias_hh_l{layer}")[hidden: 2 * hidden].fill_(0.0)

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

    def decoder(self) -> "StepDecoder | None":
        """A CPU decoder over a snapshot of the current weights, for generating one token at a time.

        None for the from-scratch layers (their GRU is Cho's variant, and their point is to be read,
        not to be fast) and for minGRU/minLSTM, whose own length-1 path is already the recurrence.
        """
        return StepDecoder(self) if self.config.impl == "fused" and self.config.kind not in MIN_KINDS else None


class StepDecoder:
    """One time step of the model in NumPy, on a CPU copy of its weights.

    Batch-1 decoding is a chain of matrix-vector products whose cost is reading the weights. On the
    CPU, NumPy's BLAS does these products several times faster than PyTorch's kernels for a single
    row (measured: 0.11 ms against 0.52 ms for the three products of the 2x384 LSTM preset), so the
    step is written here with the same equations as PyTorch's layers (see the module docstring)
    and tested equal to `RecurrentLM.forward`.
    """

    def __init__(self, model: RecurrentLM):
        self.kind = model.config.kind
        weights = {name: t.detach().float().cpu().numpy() for name, t in model.state_dict().items()}
        self.embedding = weights["embedding.weight"]
        self.layers = []
        for k in range(model.config.layers):
            w_ih, w_hh = weights[f"rnn.weight_ih_l{k}"], weights[f"rnn.weight_hh_l{k}"]
            b_ih, b_hh = weights[f"rnn.bias_ih_l{k}"], weights[f"rnn.bias_hh_l{k}"]
            if self.kind == "gru":
                # The GRU's reset gate multiplies W_hn h + b_hn, so the two products stay apart.
                self.layers.append((np.ascontiguousarray(w_ih.T), b_ih, np.ascontiguousarray(w_hh.T), b_hh))
            else:
                # One product of [x, h] with [W_ih, W_hh] instead of two.
                self.layers.append((np.ascontiguousarray(np.concatenate([w_ih, w_hh], 1).T), b_ih + b_hh))
        self.proj = np.ascontiguousarray(weights["proj.weight"].T) if "proj.weight" in weights else None
        self.head = np.ascontiguousarray(weights["head.weight"].T)
        self.head_bias = weights["head.bias"]

    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """ids [batch] and the state -> logits [batch, vocab] and the next state (CPU tensors)."""
        x = self.embedding[ids.numpy()]
        lstm = self.kind == "lstm"
        hs = [h.numpy() for h in (state[0] if lstm else state)]
        cs = [c.numpy() for c in state[1]] if lstm else None
        for k, weights in enumerate(self.layers):
            h = hs[k]
            if self.kind == "rnn":
                h = np.tanh(np.concatenate([x, h], 1) @ weights[0] + weights[1])
            elif lstm:
                i, f, g, o = np.split(np.concatenate([x, h], 1) @ weights[0] + weights[1], 4, 1)
                cs[k] = _sigmoid(f) * cs[k] + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(cs[k])
            else:
                xr, xz, xn = np.split(x @ weights[0] + weights[1], 3, 1)
                hr, hz, hn = np.split(h @ weights[2] + weights[3], 3, 1)
                r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
                h = (1 - z) * np.tanh(xn + r * hn) + z * h
            hs[k] = x = h
        if self.proj is not None:
            x = x @ self.proj
        logits = torch.from_numpy(x @ self.head + self.head_bias)
        hidden = torch.from_numpy(np.stack(hs))
        return logits, ((hidden, torch.from_numpy(np.stack(cs))) if lstm else hidden)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows, unlike 1 / (1 + exp(-x)).
    return 0.5 * (1.0 + np.tanh(0.5 * x))
