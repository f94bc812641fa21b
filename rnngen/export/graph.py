"""A model as one ONNX graph: tokens [batch, time] and the state in, logits [batch, time, vocab] and the new state out.

One graph both reads a prompt (time = its length) and steps one token (time = 1): the state it returns is the
state it takes next. Written by PyTorch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`) at
opset `OPSET`; the dynamo exporter, given a dynamic time axis, wrote graphs that ONNX Runtime could not run at
another length (issue 51). The layers become ONNX's own operators:

  RNN, LSTM, GRU: ONNX's `RNN`, `LSTM` and `GRU`. The fused GRU is PyTorch's (reset after the product), which
      is ONNX's GRU with `linear_before_reset=1`, as the exporter writes it.
  The lecture's cells (`--impl scratch`): its RNN and LSTM compute PyTorch's equations on weights of the same
      names, so they are exported as the fused layers. Its GRU resets BEFORE the product, ONNX's GRU with
      `linear_before_reset=0`, and its update gate keeps the NEW candidate where ONNX's keeps the old state:
      z' = 1 - z = sigmoid(-(W_z x + R_z h + b_z)), so the update gate's rows are negated and the attribute set.
  minGRU, minLSTM: their step form, h_t = a_t * h_{t-1} + b_t, as an ONNX `Loop` over time (a TorchScript
      loop), the coefficients and the residual blocks as plain operators.

`check_graph` holds every exported graph to rnngen's NumPy model (`rnngen.generation.numpy_lm`) before a folder is
written: the same logits within `TOLERANCE`.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnngen.config import MIN_KINDS, ModelConfig
from rnngen.errors import RnngenError
from rnngen.generation.numpy_lm import NumpyLM
from rnngen.models import build
from rnngen.store.schema import gate_rows, recurrent_layer

OPSET = 17  # LayerNormalization's first opset; ONNX Runtime 1.14 on, ONNX Runtime Web and most runtimes read it
TOLERANCE = 1e-4  # the largest difference from rnngen's NumPy logits an exported graph may show
TOKENS, LOGITS = "tokens", "logits"


def state_names(config: ModelConfig) -> list[tuple[str, str]]:
    """The graph's state, as (input, output) names: h for every kind, and c for the LSTM, each [layers, batch,
    hidden] in and out."""
    names = [("h", "h_out")]
    return names + [("c", "c_out")] if config.kind == "lstm" else names


class _Recurrence(nn.Module):
    """A minGRU/minLSTM layer in its step form, h_t = a_t * h_{t-1} + b_t, with the layer's own coefficients."""

    def __init__(self, layer: nn.Module, loop: Any):
        super().__init__()
        self.layer, self.loop = layer, loop

    def forward(self, x: torch.Tensor, h0: torch.Tensor, sequential: bool = False) -> torch.Tensor:
        log_a, log_b = self.layer.coefficients(x)
        return self.loop(log_a.exp(), log_b.exp(), h0)


def _step_loop() -> Any:
    """The recurrence as a TorchScript loop, which the exporter writes as ONNX's `Loop` over a dynamic time axis
    (a traced Python loop would be unrolled to the length it was traced with)."""

    def loop(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out = []
        for t in range(a.size(1)):
            h = a[:, t] * h + b[:, t]
            out.append(h)
        return torch.stack(out, 1)

    with warnings.catch_warnings():  # TorchScript's deprecation: its loops are what the exporter writes as `Loop`
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(loop)


class _Graph(nn.Module):
    """The model with the state as separate tensors: ONNX has no tuples."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.lstm = model, model.config.kind == "lstm"

    def forward(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        logits, state = self.model(tokens, (h, c) if self.lstm else h)
        return (logits, *state) if self.lstm else (logits, state)


def exportable(model: nn.Module) -> tuple[nn.Module, bool]:
    """A copy of `model` (a `RecurrentLM` in eval mode) that computes the same function with layers the exporter
    writes as ONNX operators, and whether its GRU resets before the product (the lecture's, see the module)."""
    config: ModelConfig = model.config
    if config.kind in MIN_KINDS:
        copied = copy.deepcopy(model)
        loop = _step_loop()
        copied.rnn.layers = nn.ModuleList(_Recurrence(layer, loop) for layer in copied.rnn.layers)
        return copied.eval(), False
    if config.impl == "fused":
        return model, False
    fused = build(dataclasses.replace(config, impl="fused")).eval()
    fused.load_state_dict(model.state_dict())
    cho = config.kind == "gru"
    if cho:
        with torch.no_grad():
            for k in range(config.layers):
                names = recurrent_layer(k)
                for name in (names.weight_ih, names.weight_hh, names.bias_ih, names.bias_hh):
                    fused.get_parameter(name)[gate_rows("gru", "z", config.hidden)] *= -1
    return fused, cho


def write_graph(model: nn.Module, path: Path, quantize: str | None = None) -> None:
    """Write `model` (a `RecurrentLM`) to `path` as ONNX (see the module): inputs `tokens` [batch, time] (int64) and
    the state (`state_names`), outputs `logits` [batch, time, vocab] and the new state, batch and time dynamic.

    The weights are float32, or int8 with `quantize="int8"` (ONNX Runtime's dynamic quantization: the matrices of
    the products and the LSTM's in int8, the activations quantized as they come). A float32 graph of a tied model
    stores the embedding once (`_share_tied_head`)."""
    import onnx

    config: ModelConfig = model.config
    graph, cho = exportable(model.eval())
    names = state_names(config)
    zeros = tuple(torch.zeros(config.layers, 1, config.hidden) for _ in names)
    dynamic = {TOKENS: {0: "batch", 1: "time"}, LOGITS: {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for pair in names for name in pair}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter's notices (its deprecation, tracer warnings about shapes that the dynamic axes
        # cover) are for torch's developers, not for the user of `rnngen export`.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Graph(graph),
            (torch.zeros(1, 3, dtype=torch.long), *zeros),
            str(path),
            input_names=[TOKENS, *(name for name, _ in names)],
            output_names=[LOGITS, *(name for _, name in names)],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            # torch 2.9 and later default to the dynamo exporter; older versions to this one, and the oldest have no
            # `dynamo` keyword.
            **({"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}),
        )
    proto = onnx.load(str(path))
    if cho:
        for node in proto.graph.node:
            if node.op_type == "GRU":
                for attribute in node.attribute:
                    if attribute.name == "linear_before_reset":
                        attribute.i = 0
    if quantize:
        onnx.save(proto, str(path))
        _quantize_int8(path)
        return
    if config.tie:
        _share_tied_head(proto)
    onnx.save(proto, str(path))


def _share_tied_head(proto: Any) -> None:
    """Store a tied head once: the exporter folds the head's weight, the embedding transposed, into a second copy
    (a quarter of a 2x512 LSTM's file with 4,096 tokens); a `Transpose` of the embedding takes its place, which
    ONNX Runtime folds once when it loads the graph, so that a step costs the same."""
    from onnx import helper, numpy_helper

    weights = {tensor.name: tensor for tensor in proto.graph.initializer}
    gather = next(node for node in proto.graph.node if node.op_type == "Gather" and node.input[1] == TOKENS)
    embedding = numpy_helper.to_array(weights[gather.input[0]])
    for tensor in list(proto.graph.initializer):
        if tuple(tensor.dims) == embedding.shape[::-1] and np.array_equal(numpy_helper.to_array(tensor), embedding.T):
            proto.graph.initializer.remove(tensor)
            proto.graph.node.insert(0, helper.make_node("Transpose", [gather.input[0]], [tensor.name], perm=[1, 0]))


def _quantize_int8(path: Path) -> None:
    """ONNX Runtime's dynamic quantization of the graph at `path`, in place."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_name(path.name + ".int8")
    # It logs a suggestion to preprocess image models on the root logger; the graphs here need none.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    quantized.replace(path)


def check_graph(path: Path, reference: NumpyLM, ids: list[int], tolerance: float = TOLERANCE) -> float:
    """The largest difference between the logits ONNX Runtime computes with graph `path` after each of `ids` (then
    after one more step from the state it returned) and those of rnngen's NumPy model; a `RnngenError` above
    `tolerance`."""
    session = session_of(path)
    inputs = [node.name for node in session.get_inputs()]
    state = [np.zeros(shape, np.float32) for shape in _state_shapes(reference.config)]
    logits, *state = session.run(None, {TOKENS: np.asarray([ids[:-1]], np.int64), **dict(zip(inputs[1:], state))})
    stepped, *_ = session.run(None, {TOKENS: np.asarray([ids[-1:]], np.int64), **dict(zip(inputs[1:], state))})
    ours = np.concatenate([logits[0], stepped[0]])
    theirs, _ = reference.logits_after_each(ids)
    difference = float(np.abs(ours - theirs).max())
    if not difference <= tolerance:
        raise RnngenError(
            f"the ONNX graph computes other logits than rnngen's model (largest difference {difference:.2g}, more "
            f"than {tolerance:g}): torch {torch.__version__} exports this {reference.config.kind} wrongly; try "
            "another torch version, and report it with the run's config.json"
        )
    return difference


def session_of(path: Path) -> Any:
    """An ONNX Runtime session on the CPU for graph `path`."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _state_shapes(config: ModelConfig) -> list[tuple[int, int, int]]:
    return [(config.layers, 1, config.hidden) for _ in state_names(config)]
