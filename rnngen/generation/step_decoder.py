"""One time step of a fused RNN/LSTM/GRU in NumPy, for decoding on the CPU.

On a CPU a length-1 call of PyTorch's fused layer costs several times its arithmetic, and batch-1
decoding is nothing but length-1 calls; NumPy's BLAS does the same matrix-vector products several
times faster. The equations are PyTorch's, listed in `rnngen.models.recurrent`.
"""

from __future__ import annotations

import numpy as np
import torch

from rnngen.models import RecurrentLM
from rnngen.models.state import State


class StepDecoder:
    """One time step of the model in NumPy, on a CPU copy of its weights.

    Batch-1 decoding is a chain of matrix-vector products whose cost is reading the weights. On the
    CPU, NumPy's BLAS does these products several times faster than PyTorch's kernels for a single
    row (measured: 0.11 ms against 0.52 ms for the three products of the 2x384 LSTM preset), so the
    step is written here with the same equations as PyTorch's layers (see the module docstring)
    and tested equal to `RecurrentLM.forward`.
    """

    @staticmethod
    def supports(config) -> bool:
        """Whether the model's layers are PyTorch's fused ones, whose equations this step writes out."""
        return config.impl == "fused" and config.kind in ("rnn", "lstm", "gru")

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
