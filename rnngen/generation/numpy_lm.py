"""Every rnngen model in NumPy, for completion on the CPU without torch.

Batch-1 decoding is a chain of matrix-vector products whose cost is reading the weights. On the
CPU, NumPy's BLAS does these products several times faster than PyTorch's kernels for a single
row (measured: 0.11 ms against 0.52 ms for the three products of a 2x384 LSTM), and
NumPy imports in 0.1 s where torch takes 2-3 s. The equations are the models' own, written out:

  RNN, LSTM, GRU (fused): PyTorch's, listed in `rnngen.models.recurrent` (the GRU resets AFTER the
      product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h = (1 - z) * n + z * h).
  Scratch RNN and LSTM: the lecture's cells, the same equations as PyTorch's.
  Scratch GRU: the lecture's, as `rnngen.models.scratch.gru_cell_cho` writes it: reset BEFORE the
      product (Cho et al. 2014), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), and h = (1 - z) * h + z * n
      (Chung et al. 2014's direction).
  minGRU, minLSTM: `rnngen.models.minimal`: pre-norm residual blocks, each the plain recurrence
      h_t = a_t * h_{t-1} + b_t and a GELU feed-forward layer, then a final LayerNorm.

A prompt is primed layer by layer: matrix products give a layer's input projections for a run of
the prompt's tokens, then the recurrence runs step by step (only the h-dependent product per step).
Chunks of `PRIME_CHUNK` tokens keep memory flat in the prompt's length. The head runs on the last
position only. Tests hold every kind equal to `RecurrentLM.forward` to float32 tolerance.

A token's arithmetic while priming depends on its place in the document alone: its input projections are
row `position % PRIME_BLOCK` of a `PRIME_BLOCK`-row product (`_aligned_linear`), whatever run of tokens it
came in. BLAS may round one row of a product apart from the same row of a product of another shape, so
this is what makes a document read in slices (the server's), in one pass (`rnngen complete`) or resumed
from a kept state (`rnngen.generation.state_cache`) give the same bits.

The weights are found by the names `rnngen.store.schema` gives, and each layer's stacked gates are
reordered from the stored order into the one the cells here read (`GATE_ORDER`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnngen.config import MIN_KINDS, ModelConfig
from rnngen.generation.arrays import NUMPY, PRIME_BLOCK, PRIME_CHUNK
from rnngen.store import schema

LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default
NumpyState = Any  # h [layers, batch, hidden], or the LSTM's (h, c)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows, unlike 1 / (1 + exp(-x)).
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to float32 precision (NumPy has none): Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7."""
    x64 = x.astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x64))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x64) * (1.0 - poly * np.exp(-x64 * x64))).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """nn.GELU's exact form, x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + _erf(x * (1 / math.sqrt(2))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _g(v: np.ndarray) -> np.ndarray:
    """minGRU's positive activation: v + 1/2 for v >= 0, sigmoid(v) below."""
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


# The order in which the NumPy cells read each kind's gates; stored weights are reordered into it as
# they are loaded (the stored order is `schema.GATES`). The LSTM's output gate comes before its
# candidate so that the three sigmoid gates are one contiguous block (see `_lstm_update`).
GATE_ORDER = {
    "rnn": ("h",),
    "lstm": ("i", "f", "o", "g"),
    "gru": ("r", "z", "n"),
    "mingru": ("z", "h"),
    "minlstm": ("f", "i", "h"),
}


def _gate_order_rows(kind: str, hidden: int) -> np.ndarray:
    """The stored rows of a stacked gate weight, in `GATE_ORDER`."""
    return np.r_[tuple(schema.gate_rows(kind, gate, hidden) for gate in GATE_ORDER[kind])]


class NumpyLM:
    """A language model on NumPy float32 weights: `prime` a prompt, then `step` one token per row."""

    ops = NUMPY

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]):
        self.config = config
        w = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in weights.items()}
        self.embedding = w[schema.EMBEDDING]
        self.cho = config.impl == "scratch" and config.kind == "gru"
        self.layers = [self._layer(w, k) for k in range(config.layers)]
        if config.kind in MIN_KINDS:
            self.final_norm = (w[f"{schema.FINAL_NORM}.weight"], w[f"{schema.FINAL_NORM}.bias"])
        self.proj = w[schema.PROJECTION].T.copy() if schema.PROJECTION in w else None
        self.head = w.get(schema.HEAD_WEIGHT, self.embedding).T.copy()  # a tied head is the embedding
        self.head_bias = w[schema.HEAD_BIAS]

    @classmethod
    def from_module(cls, model: Any) -> NumpyLM:
        """A copy of a torch `RecurrentLM`'s weights."""
        return cls(model.config, {name: t.detach().float().cpu().numpy() for name, t in model.state_dict().items()})

    def _layer(self, w: dict[str, np.ndarray], k: int) -> dict[str, Any]:
        kind, hidden = self.config.kind, self.config.hidden
        rows = _gate_order_rows(kind, hidden)
        if kind in MIN_KINDS:
            block = schema.residual_block(k)

            def pair(name: str) -> tuple[np.ndarray, np.ndarray]:
                return w[f"{name}.weight"], w[f"{name}.bias"]

            return {
                "norm": pair(block.norm),
                "w_in": w[f"{block.gates}.weight"][rows].T.copy(),
                "b_in": w[f"{block.gates}.bias"][rows],
                "w_out": w[f"{block.out}.weight"].T.copy(),
                "b_out": w[f"{block.out}.bias"],
                "ff_norm": pair(block.ff_norm),
                "w_ff1": w[f"{block.ff_in}.weight"].T.copy(),
                "b_ff1": w[f"{block.ff_in}.bias"],
                "w_ff2": w[f"{block.ff_out}.weight"].T.copy(),
                "b_ff2": w[f"{block.ff_out}.bias"],
            }
        names = schema.recurrent_layer(k)
        w_ih, w_hh = w[names.weight_ih][rows], w[names.weight_hh][rows]
        b_ih, b_hh = w[names.bias_ih][rows], w[names.bias_hh][rows]
        if kind == "gru":
            # Both GRUs multiply r with part of the h-side term, so the two products stay apart.
            if self.cho:
                return {
                    "w_in": w_ih.T.copy(),
                    "b_in": b_ih,
                    "w_hrz": w_hh[: 2 * hidden].T.copy(),
                    "b_hrz": b_hh[: 2 * hidden],
                    "w_hn": w_hh[2 * hidden :].T.copy(),
                    "b_hn": b_hh[2 * hidden :],
                }
            return {"w_in": w_ih.T.copy(), "b_in": b_ih, "w_h": w_hh.T.copy(), "b_h": b_hh}
        if kind == "lstm":
            # The rows of i, f, o halved (exact in floating point): sigmoid(v) = 1/2 + tanh(v/2)/2, so one
            # tanh serves all four gates.
            scale = np.r_[np.full(3 * hidden, 0.5, np.float32), np.ones(hidden, np.float32)]
            w_ih, w_hh = w_ih * scale[:, None], w_hh * scale[:, None]
            b_ih, b_hh = b_ih * scale, b_hh * scale
        return {
            "w_in": w_ih.T.copy(),
            "b_in": b_ih + b_hh,
            "w_h": w_hh.T.copy(),
            "w_cat": np.concatenate([w_ih, w_hh], 1).T.copy(),
        }

    def init_state(self, batch: int) -> NumpyState:
        """The zero state of a batch."""
        zeros = np.zeros((self.config.layers, batch, self.config.hidden), dtype=np.float32)
        return (zeros, zeros.copy()) if self.config.kind == "lstm" else zeros

    # A state read in any pieces is the state read at once, at every position (see the module).
    exact_every = 1

    def prime(
        self, ids: list[int], state: NumpyState | None = None, position: int = 0
    ) -> tuple[np.ndarray, NumpyState]:
        """Feed a prompt (at least one id) to one row: the next-token logits [vocab] and the state after it."""
        logits, state, _ = self.read(ids, state, position)
        return logits, state

    def read(
        self, ids: list[int], state: NumpyState | None = None, position: int = 0, keep: int | None = None
    ) -> tuple[np.ndarray, NumpyState, NumpyState | None]:
        """Feed `ids` (at least one) to one row from `state`, ids[0] standing at `position` in its document: the
        next-token logits [vocab], the state after them, and with `keep` (1 to len(ids)) the state after the first
        `keep` of them (else None). Each token is computed as it is in any other read of the document."""
        state = self.init_state(1) if state is None else state
        kept = None
        for start in range(0, len(ids), PRIME_CHUNK):
            chunk = ids[start : start + PRIME_CHUNK]
            inside = keep - start if keep is not None and 0 < keep - start <= len(chunk) else None
            x, state, found = self._run(self.embedding[np.asarray(chunk)][:, None], state, position + start, inside)
            kept = found if found is not None else kept
        return self._logits(x[-1])[0], state, kept

    def logits_after_each(self, ids: list[int], state: NumpyState | None = None) -> tuple[np.ndarray, NumpyState]:
        """Feed up to `PRIME_CHUNK` ids to one row: the next-token logits after each [len(ids), vocab] and the state."""
        state = self.init_state(1) if state is None else state
        x, state, _ = self._run(self.embedding[np.asarray(ids)][:, None], state)
        return self._logits(x[:, 0]), state

    def step(self, ids: np.ndarray, state: NumpyState) -> tuple[np.ndarray, NumpyState]:
        """Feed one token per row (ids [batch]): next-token logits [batch, vocab] and the new state."""
        x, state, _ = self._run(self.embedding[np.asarray(ids)][None], state)
        return self._logits(x[0]), state

    @staticmethod
    def ids(values: list[int]) -> np.ndarray:
        return NUMPY.ids(values)

    @staticmethod
    def flags(n: int) -> np.ndarray:
        return NUMPY.flags(n)

    @staticmethod
    def generator(seed: int | None) -> np.random.Generator:
        """A random generator (PCG64): seeded for reproducible samples, else from the OS."""
        return NUMPY.generator(seed)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        if self.config.kind in MIN_KINDS:
            x = _layer_norm(x, *self.final_norm)
        if self.proj is not None:
            x = _product(x, self.proj)
        return _product(x, self.head) + self.head_bias

    def _run(
        self, x: np.ndarray, state: NumpyState, position: int | None = None, keep: int | None = None
    ) -> tuple[np.ndarray, NumpyState, NumpyState | None]:
        """x [time, batch, embed] through every layer, layer by layer: outputs, the final state, and with `keep` the
        state after that many steps. With `position` (a prompt's place in its document, one row) each step is
        computed as priming computes it wherever a read starts (see the module); without, as decoding does."""
        lstm = self.config.kind == "lstm"
        hs = list(state[0] if lstm else state)
        cs = list(state[1]) if lstm else None
        kept_h, kept_c = [], []
        for k, layer in enumerate(self.layers):
            if self.config.kind in MIN_KINDS:
                x, hs[k], found = self._min_block(layer, x, hs[k], position, keep)
                kept_h.append(found)
                continue
            h = hs[k]
            if position is None and "w_cat" in layer and len(x) == 1:
                # One token a row, decoding: one product of [x, h] with [W_ih; W_hh] instead of two.
                gates = _product(np.concatenate([x[0], h], -1), layer["w_cat"]) + layer["b_in"]
                if lstm:
                    h, cs[k] = _lstm_update(gates, cs[k])
                else:
                    h = np.tanh(gates)
                hs[k], x = h, h[None]
                continue
            projected = _projected(x, layer["w_in"], layer["b_in"], position)  # all time steps of the chunk at once
            out = np.empty(projected.shape[:2] + (self.config.hidden,), dtype=np.float32)
            if lstm:
                c, w_h = cs[k], layer["w_h"]
                for t in range(len(projected)):
                    h, c = _lstm_update(projected[t] + _product(h, w_h), c)
                    out[t] = h
                    if t + 1 == keep:
                        kept_h.append(h)
                        kept_c.append(c)
                cs[k] = c
            else:
                cell = _cho_gru_cell if self.cho else _gru_cell if self.config.kind == "gru" else _rnn_cell
                for t in range(len(projected)):
                    out[t] = h = cell(projected[t], h, layer)
                    if t + 1 == keep:
                        kept_h.append(h)
            hs[k], x = h, out
        kept = None
        if keep is not None:
            kept = (np.stack(kept_h), np.stack(kept_c)) if lstm else np.stack(kept_h)
        return x, ((np.stack(hs), np.stack(cs)) if lstm else np.stack(hs)), kept

    def _min_block(
        self, layer: dict, x: np.ndarray, h: np.ndarray, position: int | None = None, keep: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One minGRU/minLSTM residual block over x [time, batch, embed]: its output, its final state and with `keep`
        its state after that many steps (`position` as in `_run`)."""

        def linear(inputs: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
            return _projected(inputs, weight_t, bias, position)

        projected = linear(_layer_norm(x, *layer["norm"]), layer["w_in"], layer["b_in"])
        if self.config.kind == "mingru":
            k, h_tilde = np.split(projected, 2, -1)
            a, b = _sigmoid(-k), _sigmoid(k) * _g(h_tilde)  # 1 - z and z * g(h~)
        else:
            k_f, k_i, h_tilde = np.split(projected, 3, -1)
            diff = _softplus(-k_f) - _softplus(-k_i)  # log i - log f
            a, b = _sigmoid(-diff), _sigmoid(diff) * _g(h_tilde)  # f / (f + i) and i / (f + i) * g(h~)
        hidden = np.empty_like(a)
        kept = None
        for t in range(len(a)):
            hidden[t] = h = a[t] * h + b[t]
            if t + 1 == keep:
                kept = h
        x = x + linear(hidden, layer["w_out"], layer["b_out"])
        ff = _gelu(linear(_layer_norm(x, *layer["ff_norm"]), layer["w_ff1"], layer["b_ff1"]))
        return x + linear(ff, layer["w_ff2"], layer["b_ff2"]), h, kept


# Up to this many rows, a product row by row (matrix-vector products, which read the weights as they are) is faster
# than one matrix-matrix product, which first copies the weights into blocks: 0.43 ms a row against 1.96 ms for two
# rows on the cpu preset's LSTM step, 2 cores (docs/serve.md). It also computes each row as it is computed alone.
ROW_BY_ROW = 4


def _product(x: np.ndarray, weight_t: np.ndarray) -> np.ndarray:
    """x [rows, in] @ weight_t [in, out], row by row for a few rows (see ROW_BY_ROW)."""
    if 1 < len(x) <= ROW_BY_ROW:
        return np.stack([row @ weight_t for row in x])
    return x @ weight_t


def _linear(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x [time, batch, in] @ weight_t [in, out] + bias as ONE 2-D product: NumPy runs a 3-D matmul as
    one small product per time step, which made priming 4x slower."""
    return (_product(x.reshape(-1, x.shape[-1]), weight_t) + bias).reshape(*x.shape[:-1], -1)


def _projected(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, position: int | None) -> np.ndarray:
    """x [time, batch, in] @ weight_t + bias: decoding's product (`position` None), else priming's (one row, its
    first step at `position` in the document)."""
    return _linear(x, weight_t, bias) if position is None else _aligned_linear(x, weight_t, bias, position)


def _aligned_linear(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, position: int) -> np.ndarray:
    """x [time, 1, in] @ weight_t [in, out] + bias, the step at document position p computed as row p % PRIME_BLOCK
    of a PRIME_BLOCK-row product (zeros in the rows of other steps): a step's bits never depend on the steps read
    with it."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty((len(rows), weight_t.shape[1]), dtype=np.float32)
    done = 0
    while done < len(rows):
        first = (position + done) % PRIME_BLOCK
        take = min(PRIME_BLOCK - first, len(rows) - done)
        block = np.zeros((PRIME_BLOCK, rows.shape[1]), dtype=np.float32)
        block[first : first + take] = rows[done : done + take]
        out[done : done + take] = (block @ weight_t)[first : first + take]
        done += take
    return (out + bias).reshape(*x.shape[:-1], -1)


def _rnn_cell(xp: np.ndarray, h: np.ndarray, layer: dict) -> np.ndarray:
    return np.tanh(xp + _product(h, layer["w_h"]))


def _lstm_update(gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The LSTM cell from its gate pre-activations (i/2, f/2, o/2, g): the new h and c."""
    size = c.shape[-1]
    t = np.tanh(gates)
    ifo = t[:, : 3 * size] * 0.5 + 0.5  # sigmoid(i), sigmoid(f), sigmoid(o)
    c = ifo[:, size : 2 * size] * c + ifo[:, :size] * t[:, 3 * size :]
    return ifo[:, 2 * size :] * np.tanh(c), c


def _gru_cell(xp: np.ndarray, h: np.ndarray, layer: dict) -> np.ndarray:
    """PyTorch's GRU: the reset gate multiplies W_hn h + b_hn (after the product); z keeps the old state."""
    x_r, x_z, x_n = np.split(xp, 3, -1)
    h_r, h_z, h_n = np.split(_product(h, layer["w_h"]) + layer["b_h"], 3, -1)
    r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return n + z * (h - n)  # (1 - z) * n + z * h


def _cho_gru_cell(xp: np.ndarray, h: np.ndarray, layer: dict) -> np.ndarray:
    """The lecture's GRU, as `gru_cell_cho`: reset BEFORE the product (Cho et al. 2014); z takes the new
    candidate (Chung et al. 2014's direction)."""
    size = h.shape[-1]
    r, z = np.split(_sigmoid(xp[:, : 2 * size] + _product(h, layer["w_hrz"]) + layer["b_hrz"]), 2, -1)
    n = np.tanh(xp[:, 2 * size :] + _product(r * h, layer["w_hn"]) + layer["b_hn"])
    return h + z * (n - h)  # (1 - z) * h + z * n
