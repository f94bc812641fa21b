"""The recurrent models: one-step decoding matches the fused layers, carried state is exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnngen.config import ModelConfig
from rnngen.generation.numpy_lm import NumpyLM
from rnngen.models import build, detach_state


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed,hidden,tie", [(32, 32, True), (24, 40, True), (24, 40, False)])
def test_step_decoder_matches_the_fused_pass(kind, embed, hidden, tie):
    torch.manual_seed(0)
    model = build(ModelConfig(kind=kind, vocab_size=50, embed=embed, hidden=hidden, layers=2, tie=tie)).eval()
    ids = torch.randint(0, 50, (3, 12))
    full, final = model(ids)
    decoder = NumpyLM.from_module(model)
    state = decoder.init_state(3)
    steps = []
    for t in range(ids.size(1)):
        logits, state = decoder.step(ids[:, t].numpy(), state)
        steps.append(torch.from_numpy(logits))
    state = tuple(map(torch.from_numpy, state)) if kind == "lstm" else torch.from_numpy(state)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)
    for a, b in zip(state if kind == "lstm" else (state,), final if kind == "lstm" else (final,)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_carried_state_windows_equal_one_unbroken_pass(kind):
    torch.manual_seed(0)
    model = build(ModelConfig(kind=kind, vocab_size=40, embed=16, hidden=16, layers=2)).eval()
    ids = torch.randint(0, 40, (2, 65))
    logits, _ = model(ids[:, :-1])
    whole = F.cross_entropy(logits.reshape(-1, 40), ids[:, 1:].reshape(-1))
    state, losses = None, []
    for start in range(0, 64, 16):
        window = ids[:, start: start + 17]
        logits, state = model(window[:, :-1], state)
        state = detach_state(state)
        losses.append(F.cross_entropy(logits.reshape(-1, 40), window[:, 1:].reshape(-1)))
    torch.testing.assert_close(torch.stack(losses).mean(), whole)


def test_lstm_forget_gate_starts_open_and_head_is_tied():
    model = build(ModelConfig(kind="lstm", vocab_size=30, embed=8, hidden=8, layers=2))
    for layer in range(2):
        bias = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")
        assert torch.all(bias[8:16] == 1.0)
    assert model.head.weight is model.embedding.weight
    untied = build(ModelConfig(kind="lstm", vocab_size=30, embed=8, hidden=12, tie=False))
    assert untied.head.weight is not untied.embedding.weight and untied.proj is None
