"""The lecture's cells against PyTorch's fused layers: same numbers where the maths is the same."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnngen.models.scratch import ScratchRecurrent, gru_cell_cho

FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def pair(kind: str, layers: int = 2):
    torch.manual_seed(0)
    fused = FUSED[kind](6, 8, num_layers=layers, batch_first=True)
    scratch = ScratchRecurrent(kind, 6, 8, layers)
    scratch.load_state_dict(fused.state_dict())  # same names, same shapes
    return fused, scratch


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_scratch_rnn_and_lstm_equal_pytorch_in_outputs_and_gradients(kind):
    fused, scratch = pair(kind)
    x = torch.randn(3, 7, 6)
    state = (torch.randn(2, 3, 8), torch.randn(2, 3, 8)) if kind == "lstm" else torch.randn(2, 3, 8)
    out_f, final_f = fused(x, state)
    out_s, final_s = scratch(x, state)
    torch.testing.assert_close(out_s, out_f, rtol=1e-5, atol=1e-6)
    (out_f.square().sum() + (final_f[1] if kind == "lstm" else final_f).sum()).backward()
    (out_s.square().sum() + (final_s[1] if kind == "lstm" else final_s).sum()).backward()
    for (name, p_f), p_s in zip(fused.named_parameters(), scratch.parameters()):
        torch.testing.assert_close(p_s.grad, p_f.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_scratch_gru_is_chos_variant_not_cudnns():
    fused, scratch = pair("gru", layers=1)
    x = torch.randn(3, 7, 6)
    difference = (fused(x)[0] - scratch(x)[0]).abs().max()
    assert difference > 1e-2  # same weights, different function: the table in the README says why


def test_scratch_gru_gradients_match_finite_differences():
    torch.manual_seed(0)
    weights = [
        torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in ((12, 3), (12, 4), (12,), (12,))
    ]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gru_cell_cho, (x, h, *weights))
