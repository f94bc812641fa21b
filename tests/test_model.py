"""The recurrent models: one-step decoding matches the fused layers, carried state is exact."""

from __future__ import annotations

import random
import string

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnngen.config import ModelConfig, TrainConfig
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
        window = ids[:, start : start + 17]
        logits, state = model(window[:, :-1], state)
        state = detach_state(state)
        losses.append(F.cross_entropy(logits.reshape(-1, 40), window[:, 1:].reshape(-1)))
    torch.testing.assert_close(torch.stack(losses).mean(), whole)


def test_lstm_starts_from_pytorch_init_and_head_is_tied():
    # No forget-gate bias of 1: with the state carried across windows, it lets the cells integrate.
    model = build(ModelConfig(kind="lstm", vocab_size=30, embed=8, hidden=8, layers=2))
    for layer in range(2):
        bias = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")
        assert bias.abs().max() <= 2 / 8**0.5
    assert model.head.weight is model.embedding.weight
    untied = build(ModelConfig(kind="lstm", vocab_size=30, embed=8, hidden=12, tie=False))
    assert untied.head.weight is not untied.embedding.weight and untied.proj is None
    assert 0.05 < untied.head.weight.abs().max() <= 0.1


def _zipf_text(chars: int, seed: int = 0) -> str:
    """Made-up words of 1-8 letters drawn with Zipf-like frequencies: a text with many characters."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 8))) for _ in range(2000)]
    out, size = [], 0
    while size < chars:
        out.append(words[int(rng.paretovariate(1.0)) % len(words)] + rng.choice(" ,. \n;"))
        size += len(out[-1])
    return "".join(out)[:chars]


def test_lstm_cell_state_stays_bounded_over_a_long_carried_stream():
    # Training as rnngen does (carried state, AdamW, clipping); then one stream of 20k characters is
    # read carrying the state throughout. With a forget-gate bias of 1 the cells of this model
    # integrate their input to |c| of 500-3800 (seeds 0-2) and learn slower; from PyTorch's init they
    # stay near 100.
    torch.manual_seed(0)
    text = _zipf_text(60_000)
    alphabet = sorted(set(text))
    ids = torch.tensor([alphabet.index(ch) for ch in text])
    vocab, rows, window = len(alphabet), 16, 32
    model = build(ModelConfig(kind="lstm", vocab_size=vocab, embed=128, hidden=128, layers=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    streams, state = ids[: len(ids) // rows * rows].view(rows, -1), None
    for step in range(100):
        chunk = streams[:, step * window : (step + 1) * window + 1]
        logits, state = model(chunk[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, vocab), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = detach_state(state)
    model.eval()
    carried_loss = reset_loss = largest = 0.0
    state, stream = None, ids[None, : 20_000 + 1]
    with torch.no_grad():
        for start in range(0, 20_000, window):
            chunk = stream[:, start : start + window + 1]
            logits, state = model(chunk[:, :-1], state)
            carried_loss += F.cross_entropy(logits[0], chunk[0, 1:]).item()
            reset_loss += F.cross_entropy(model(chunk[:, :-1])[0][0], chunk[0, 1:]).item()
            largest = max(largest, state[1].abs().max().item())
    assert largest < 300
    assert carried_loss <= reset_loss


def test_a_new_run_starts_at_the_texts_unigram_distribution(char_corpus, tmp_path):
    from rnngen.store.runs import RunFolder
    from rnngen.training.trainer import Trainer

    model_cfg = ModelConfig(vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=1)
    trainer = Trainer(char_corpus, model_cfg, TrainConfig(steps=1, samples=False), RunFolder(tmp_path / "r"))
    counts = char_corpus.token_counts("train")
    first = torch.softmax(trainer.model.head.bias.detach().double(), 0).numpy()
    assert first.argmax() == counts.argmax()
    unused = np.flatnonzero(counts == 0)
    assert len(unused) > 200 and first[unused].max() < 1e-4  # the char vocabulary's byte pieces cost nothing
    # The first loss is the text's unigram entropy, not the log of the vocabulary's size.
    ids = torch.from_numpy(np.asarray(char_corpus.tokens("train")[:2001], dtype=np.int64))[None]
    with torch.no_grad():
        logits, _ = trainer.model(ids[:, :-1])
    loss = F.cross_entropy(logits[0], ids[0, 1:]).item()
    frequencies = counts[counts > 0] / counts.sum()
    entropy = -(frequencies * np.log(frequencies)).sum()
    assert abs(loss - entropy) < 0.3 < np.log(char_corpus.vocab_size) - entropy
