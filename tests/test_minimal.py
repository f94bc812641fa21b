"""minGRU and minLSTM: the parallel scan is the recurrence, and generation needs no scan."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, sample_text

from rnngen.config import ModelConfig, SampleConfig
from rnngen.data.tokenizer import Tokenizer, train
from rnngen.generation.completer import Completer
from rnngen.models import build
from rnngen.models.minimal import MinRecurrent


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
@pytest.mark.parametrize("length", [7, 2048])
@pytest.mark.parametrize("with_state", [False, True])
def test_scan_equals_the_step_by_step_recurrence(kind, length, with_state):
    torch.manual_seed(0)
    stack = MinRecurrent(kind, 16, 24, num_layers=2)
    x = torch.randn(2, length, 16)
    state = torch.rand(2, 2, 24) if with_state else None
    results = []
    for sequential in (False, True):
        stack.sequential = sequential
        stack.zero_grad()
        out, final = stack(x, state)
        (out.square().mean() + final.mean()).backward()
        results.append((out, final, [p.grad.clone() for p in stack.parameters()]))
    (out_scan, final_scan, grads_scan), (out_seq, final_seq, grads_seq) = results
    torch.testing.assert_close(out_scan, out_seq, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final_scan, final_seq, rtol=1e-5, atol=1e-5)
    for g_scan, g_seq in zip(grads_scan, grads_seq):
        torch.testing.assert_close(g_scan, g_seq, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_generation_after_priming_equals_feeding_the_prompt_token_by_token(kind):
    tok = Tokenizer(train([sample_text(20_000)], "unigram", 400))
    torch.manual_seed(0)
    model = build(ModelConfig(kind=kind, vocab_size=tok.vocab_size, embed=32, hidden=32, layers=2)).eval()
    completer = Completer.for_module(model, tok)  # on the CPU: the NumPy model
    prompt = "the model reads a token and updates"
    primed, _ = completer.prime(prompt)
    state = None
    with torch.no_grad():
        for token in [tok.eot_id, *tok.encode(prompt)]:
            logits, state = model(torch.tensor([[token]]), state)
    torch.testing.assert_close(torch.from_numpy(primed.logits), logits[0, -1], rtol=1e-4, atol=1e-5)
    greedy = SampleConfig(max_tokens=20, temperature=0)
    fed = completer.complete("", greedy, memory=type(primed)(logits[0, -1].numpy(), state.numpy())).text()
    assert completer.complete(prompt, greedy).text() == fed


def test_min_models_train_resume_and_complete_from_the_cli(run_cli, trained):
    for kind in ("mingru", "minlstm"):
        result = run_cli("train", "--corpus", "notes", *TINY, "--model", kind, "--name", kind)
        assert result.exit_code == 0, result.output
        assert run_cli("train", "--resume", kind, "--steps", "40", "--plain").exit_code == 0
        assert run_cli("complete", "the", "--checkpoint", kind, "--max-tokens", "5").exit_code == 0
    assert "mingru" in run_cli("runs").output
