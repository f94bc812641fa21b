"""The weights a model stores: their names and shapes for a `ModelConfig`, and where each gate's rows are.

One description for every reader: the checkpoint header check (`checkpoint_format`), the NumPy
model (`rnngen.generation.numpy_lm`) and the torch modules (`rnngen.models`), whose parameter names
a test holds equal to these. The names are those of the torch modules' state dicts, so they are
what checkpoint files hold (under "model."): changing one here breaks every stored checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rnngen.config import MIN_KINDS, ModelConfig

# Each kind's gates in the order its input projection stacks their rows (hidden rows each):
# PyTorch's layouts for rnn, lstm and gru, the paper's for minGRU and minLSTM.
GATES: dict[str, tuple[str, ...]] = {
    "rnn": ("h",),  # the one pre-activation of h_t
    "lstm": ("i", "f", "g", "o"),  # input, forget, cell candidate, output
    "gru": ("r", "z", "n"),  # reset, update, candidate
    "mingru": ("z", "h"),  # update, candidate h~
    "minlstm": ("f", "i", "h"),  # forget, input, candidate h~
}
FEED_FORWARD_FACTOR = 4  # the residual blocks' feed-forward layer is this many times the embedding's size

EMBEDDING = "embedding.weight"
PROJECTION = "proj.weight"  # hidden -> embedding size, for a tied head whose sizes differ
HEAD_WEIGHT = "head.weight"  # absent when tied: the embedding is the head
HEAD_BIAS = "head.bias"
FINAL_NORM = "rnn.final_norm"  # minGRU/minLSTM: the LayerNorm after the last block


def gate_rows(kind: str, gate: str, hidden: int) -> slice:
    """The rows of `gate` in a stacked gate weight or bias of a `kind` layer with `hidden` units."""
    index = GATES[kind].index(gate)
    return slice(index * hidden, (index + 1) * hidden)


def split_gates(kind: str, stacked: Any, gates: Sequence[str], dim: int = -1) -> tuple[Any, ...]:
    """The parts of `stacked` (a torch tensor or NumPy array that stacks the gates of a `kind` layer along
    `dim`: a projection, weight or bias) that hold `gates`, in the order asked: `split_gates("lstm", w, "ifgo")`."""
    hidden = stacked.shape[dim] // len(GATES[kind])
    index: list[Any] = [slice(None)] * stacked.ndim
    parts = []
    for gate in gates:
        index[dim] = gate_rows(kind, gate, hidden)
        parts.append(stacked[tuple(index)])
    return tuple(parts)


@dataclass(frozen=True)
class RecurrentLayerNames:
    """The four weights of layer k of a fused or scratch RNN/LSTM/GRU (nn.LSTM's names)."""

    weight_ih: str
    weight_hh: str
    bias_ih: str
    bias_hh: str


def recurrent_layer(k: int) -> RecurrentLayerNames:
    return RecurrentLayerNames(f"rnn.weight_ih_l{k}", f"rnn.weight_hh_l{k}", f"rnn.bias_ih_l{k}", f"rnn.bias_hh_l{k}")


@dataclass(frozen=True)
class BlockNames:
    """The sublayers of residual block k of a minGRU/minLSTM stack; each has `.weight` and `.bias`."""

    norm: str  # LayerNorm before the recurrence
    gates: str  # the recurrence's input projection, its gates stacked as `GATES` lists them
    out: str  # hidden -> embedding size
    ff_norm: str  # LayerNorm before the feed-forward layer
    ff_in: str  # embedding -> FEED_FORWARD_FACTOR x embedding
    ff_out: str  # and back


def residual_block(k: int) -> BlockNames:
    return BlockNames(
        f"rnn.norms.{k}",
        f"rnn.layers.{k}.proj",
        f"rnn.outs.{k}",
        f"rnn.ff_norms.{k}",
        f"rnn.ffs.{k}.0",
        f"rnn.ffs.{k}.2",
    )


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight a model of `config` stores (a tied head once)."""
    vocab, embed, hidden = config.vocab_size, config.embed, config.hidden
    rows = len(GATES[config.kind]) * hidden
    shapes: dict[str, tuple[int, ...]] = {EMBEDDING: (vocab, embed)}
    if config.kind in MIN_KINDS:
        wide = FEED_FORWARD_FACTOR * embed
        for k in range(config.layers):
            block = residual_block(k)
            shapes |= {
                f"{block.norm}.weight": (embed,),
                f"{block.norm}.bias": (embed,),
                f"{block.gates}.weight": (rows, embed),
                f"{block.gates}.bias": (rows,),
                f"{block.out}.weight": (embed, hidden),
                f"{block.out}.bias": (embed,),
                f"{block.ff_norm}.weight": (embed,),
                f"{block.ff_norm}.bias": (embed,),
                f"{block.ff_in}.weight": (wide, embed),
                f"{block.ff_in}.bias": (wide,),
                f"{block.ff_out}.weight": (embed, wide),
                f"{block.ff_out}.bias": (embed,),
            }
        shapes |= {f"{FINAL_NORM}.weight": (embed,), f"{FINAL_NORM}.bias": (embed,)}
        out_size = embed
    else:
        for k in range(config.layers):
            layer = recurrent_layer(k)
            shapes |= {
                layer.weight_ih: (rows, embed if k == 0 else hidden),
                layer.weight_hh: (rows, hidden),
                layer.bias_ih: (rows,),
                layer.bias_hh: (rows,),
            }
        out_size = hidden
    if config.tie and out_size != embed:
        shapes[PROJECTION] = (embed, out_size)
    if not config.tie:
        shapes[HEAD_WEIGHT] = (vocab, out_size)
    shapes[HEAD_BIAS] = (vocab,)
    return shapes
