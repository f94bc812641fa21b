"""The lecture's recurrent cells, written out: each line is one of its equations.

`ScratchRecurrent` unrolls a cell over time with a Python loop: slower than the fused layers, but
every step can be read, printed and differentiated. Its parameters have the names and shapes of
PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...),
so weights copy across with `load_state_dict` and the two can be compared number for number.

Notation: x_t is the input at time t, h_{t-1} the previous hidden state; W_i* act on x_t, W_h* on
h_{t-1} (together they are the lecture's W·[h_{t-1}, x_t]); sigma is the logistic sigmoid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnngen.store.schema import GATES, split_gates


def rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """h_t = tanh(W_h h_{t-1} + W_x x_t + b)  (the lecture's vanilla RNN)."""
    return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    """The standard LSTM cell (Hochreiter & Schmidhuber 1997, with forget gate: Gers et al. 2000)."""
    h, c = state
    i, f, g, o = split_gates("lstm", x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, "ifgo")  # each gate's rows
    i_t = torch.sigmoid(i)  # input gate   i_t = sigma(W_i·[h_{t-1}, x_t] + b_i)
    f_t = torch.sigmoid(f)  # forget gate  f_t = sigma(W_f·[h_{t-1}, x_t] + b_f)
    o_t = torch.sigmoid(o)  # output gate  o_t = sigma(W_o·[h_{t-1}, x_t] + b_o)
    c_cand = torch.tanh(g)  # candidate    c'_t = tanh(W_c·[h_{t-1}, x_t] + b_c)
    # Cell state c_t = f_t*c_{t-1} + i_t*c'_t. The lecture's slide wraps this in a sigmoid: a slip;
    # the standard cell (and PyTorch's) has none, which is what lets the cell carry values > 1.
    c_t = f_t * c + i_t * c_cand
    h_t = o_t * torch.tanh(c_t)  # hidden state h_t = o_t * tanh(c_t)
    return h_t, c_t


def gru_cell_cho(x, h, w_ih, w_hh, b_ih, b_hh):
    """The GRU as the lecture writes it: reset BEFORE the product, as Cho et al. 2014 do, and
    h = (1-z)h + z h', the direction of Chung et al. 2014 (Cho et al. keep the old state with z).

    PyTorch/cuDNN's GRU differs on both points: it resets after the product, r*(W_hn h + b_hn), and
    uses h_t = (1-z)*h' + z*h_{t-1}, Cho et al.'s direction. Same parameter shapes, different function.
    """
    x_r, x_z, x_n = split_gates("gru", x @ w_ih.T + b_ih, "rzn")
    w_hr, w_hz, w_hn = split_gates("gru", w_hh, "rzn", 0)
    b_hr, b_hz, b_hn = split_gates("gru", b_hh, "rzn", 0)
    r_t = torch.sigmoid(x_r + h @ w_hr.T + b_hr)  # reset gate  r_t = sigma(W_r·[h_{t-1}, x_t])
    z_t = torch.sigmoid(x_z + h @ w_hz.T + b_hz)  # update gate z_t = sigma(W_z·[h_{t-1}, x_t])
    h_cand = torch.tanh(x_n + (r_t * h) @ w_hn.T + b_hn)  # candidate   h'_t = tanh(W·[r_t*h_{t-1}, x_t])
    return (1 - z_t) * h + z_t * h_cand  # h_t = (1-z_t)*h_{t-1} + z_t*h'_t


class ScratchRecurrent(nn.Module):
    """A drop-in for nn.RNN/nn.LSTM/nn.GRU (batch_first) built from the cells above."""

    def __init__(self, kind: str, input_size: int, hidden: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.kind, self.hidden, self.num_layers, self.dropout = kind, hidden, num_layers, dropout
        bound = 1 / math.sqrt(hidden)  # PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H))
        for k in range(num_layers):
            size_in = input_size if k == 0 else hidden
            rows = len(GATES[kind]) * hidden
            for name, shape in (
                (f"weight_ih_l{k}", (rows, size_in)),
                (f"weight_hh_l{k}", (rows, hidden)),
                (f"bias_ih_l{k}", (rows,)),
                (f"bias_hh_l{k}", (rows,)),
            ):
                self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def _weights(self, k: int):
        return (
            getattr(self, f"weight_ih_l{k}"),
            getattr(self, f"weight_hh_l{k}"),
            getattr(self, f"bias_ih_l{k}"),
            getattr(self, f"bias_hh_l{k}"),
        )

    def forward(self, x: torch.Tensor, state=None):
        """x [batch, time, input] -> outputs [batch, time, hidden] and the final state, like nn.LSTM."""
        batch = x.size(0)
        zeros = x.new_zeros(self.num_layers, batch, self.hidden)
        if state is None:
            state = (zeros, zeros) if self.kind == "lstm" else zeros
        hs = list(state[0] if self.kind == "lstm" else state)
        cs = list(state[1]) if self.kind == "lstm" else None
        layer_input = x
        for k in range(self.num_layers):
            weights = self._weights(k)
            outputs = []
            for t in range(layer_input.size(1)):  # the unrolled loop of the lecture's picture
                x_t = layer_input[:, t]
                if self.kind == "rnn":
                    hs[k] = rnn_cell(x_t, hs[k], *weights)
                elif self.kind == "lstm":
                    hs[k], cs[k] = lstm_cell(x_t, (hs[k], cs[k]), *weights)
                else:
                    hs[k] = gru_cell_cho(x_t, hs[k], *weights)
                outputs.append(hs[k])
            layer_input = torch.stack(outputs, 1)
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout)
        final = (torch.stack(hs), torch.stack(cs)) if self.kind == "lstm" else torch.stack(hs)
        return layer_input, final
