"""Gate-bias initialisations from the literature, for a recurrent stack built by `recurrent_layers`.

Each one sets the biases of the gate that decides how much of the state a step keeps (the "keep" gate) and leaves
every other parameter as PyTorch initialised it:
  - `default`: PyTorch's own init, biases from U(-1/sqrt(H), 1/sqrt(H)): the LSTM's forget gate starts near 0.5, so
    the cell keeps about half of itself per step, 0.5^100 over 100 steps.
  - `forget1`: a positive forget-gate bias (Gers, Schmidhuber & Cummins 2000, "Learning to forget"), at 1 as
    Jozefowicz, Zaremba & Sutskever 2015 use it (it closes the LSTM's gap to the GRU): sigmoid(1) = 0.73 kept.
  - `chrono`: Tallec & Ollivier 2018 ("Can recurrent neural networks warp time?"): the keep-gate biases drawn as
    log U(1, T_max - 1), and the LSTM's input-gate biases their negatives, so unit k keeps its state over about
    exp(b_k) steps, spread over the time scales up to the dependencies' longest range T_max.

How each model's keep gate reads (the gate orders are `rnngen.store.schema.GATES`):
  - LSTM (i, f, g, o): c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g); the bias is f's (chrono: and i's, negated).
    PyTorch adds two bias vectors, b_ih + b_hh: the value goes into b_ih and b_hh's rows of that gate are zeroed.
  - GRU (r, z, n): h_t = (1 - z) n_t + z h_{t-1}, so z keeps the state and its bias is +1 or +log U(1, T_max - 1).
  - minLSTM (f, i, h~): a_t = f / (f + i); with chrono's b_i = -b_f this is sigmoid(b_f), the LSTM's keep factor.
  - minGRU (z, h~): h_t = (1 - z) h_{t-1} + z g(h~), so 1 - z keeps the state and z's bias is the negated value.
  - The vanilla RNN has no gate: every initialisation leaves it at PyTorch's default.
"""

from __future__ import annotations

import torch
from torch import nn

from rnngen.errors import RnngenError, param
from rnngen.store.schema import GATES, gate_rows

INITS = ("default", "forget1", "chrono")
GATED = ("lstm", "gru", "mingru", "minlstm")
# The keep gate of each gated kind and its sign: +1 where the gate's value is the share kept, -1 where it is the
# share replaced (minGRU's z).
KEEP_GATE = {"lstm": ("f", 1.0), "gru": ("z", 1.0), "minlstm": ("f", 1.0), "mingru": ("z", -1.0)}
# The gate chrono sets to the negated keep bias (the share written), where the model has one of its own.
WRITE_GATE = {"lstm": "i", "minlstm": "i"}


def check_init(init: str) -> None:
    """Refuse an initialisation that is not one of `INITS`, naming the option."""
    if init not in INITS:
        raise RnngenError(f"{param('init')}: unknown {init!r}: choose among {', '.join(INITS)}")


def applies(kind: str, init: str) -> str:
    """The initialisation a `kind` model actually gets when `init` is asked: "default" for the gateless RNN (and for
    anything else without a keep gate, such as the lab's attention model)."""
    check_init(init)
    return init if kind in GATED else "default"


def keep_biases(init: str, hidden: int, t_max: int) -> torch.Tensor:
    """The keep gate's biases for `hidden` units: 1 each (`forget1`) or log U(1, T_max - 1) (`chrono`)."""
    if init == "forget1":
        return torch.ones(hidden)
    # T_max <= 2 leaves the interval empty: every unit then starts at log 1 = 0, an even gate.
    return torch.empty(hidden).uniform_(1.0, max(1.0, t_max - 1.0)).log()


@torch.no_grad()
def initialise(rnn: nn.Module, kind: str, init: str, t_max: int) -> None:
    """Set the gate biases of `rnn` (a `kind` stack from `recurrent_layers`) to `init`, for dependencies of up to
    `t_max` steps (chrono's T_max; the others ignore it). `default` and the RNN leave the stack as it is. Chrono
    draws from torch's global generator, so `torch.manual_seed` before building the stack fixes it."""
    if applies(kind, init) == "default":
        return
    keep, sign = KEEP_GATE[kind]
    for biases in _bias_vectors(rnn, kind):
        hidden = biases[0].numel() // len(GATES[kind])
        value = keep_biases(init, hidden, t_max)
        _set_gate(biases, gate_rows(kind, keep, hidden), sign * value)
        if init == "chrono" and kind in WRITE_GATE:
            _set_gate(biases, gate_rows(kind, WRITE_GATE[kind], hidden), -value)


def _set_gate(biases: tuple[torch.Tensor, ...], rows: slice, value: torch.Tensor) -> None:
    """Make the biases' sum over `rows` equal `value`: all of it in the first vector, the others' rows zeroed."""
    biases[0][rows] = value
    for extra in biases[1:]:
        extra[rows] = 0.0


def _bias_vectors(rnn: nn.Module, kind: str) -> list[tuple[torch.Tensor, ...]]:
    """Per layer, the bias vectors whose sum is the gates' bias: (b_ih, b_hh) of a fused layer, the projection's
    bias of a minGRU/minLSTM layer."""
    if kind in ("mingru", "minlstm"):
        return [(layer.proj.bias,) for layer in rnn.layers]
    if not isinstance(rnn, (nn.LSTM, nn.GRU)):
        raise RnngenError(f"the gate initialisations take the fused {kind} layers, not {type(rnn).__name__}")
    return [(getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")) for k in range(rnn.num_layers)]
