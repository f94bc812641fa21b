"""Sampling filters and completion: exactly the right tokens are kept, seeds reproduce, stops stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_text
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.config import ModelConfig, SampleConfig
from rnngen.data.tokenizer import Tokenizer, train
from rnngen.errors import RnngenError
from rnngen.generation.arrays import NUMPY, ops_for
from rnngen.generation.completer import Completer
from rnngen.generation.sampling import RowOptions, draw_rows, filter_rows
from rnngen.models import build

LOGITS = torch.tensor([2.0, 0.5, 3.0, -1.0, 1.0])  # softmax ~ [.23, .05, .63, .01, .08]


def filter_logits(logits, cfg: SampleConfig, seen=None):
    """The filters on one row of logits [vocab], as a batch of one row."""
    return filter_rows(logits[None], RowOptions.of([cfg]), None if seen is None else seen[None])[0]


def draw_token(logits, cfg: SampleConfig, generator) -> int:
    """One row's draw, as a batch of one row."""
    return draw_rows(logits[None], RowOptions.of([cfg]), [generator])[0]


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.isfinite(logits).nonzero().flatten().tolist())


def test_top_k_keeps_exactly_the_k_most_likely():
    assert kept(filter_logits(LOGITS, SampleConfig(top_k=2))) == {0, 2}
    assert kept(filter_logits(LOGITS, SampleConfig(top_k=1))) == {2}
    assert kept(filter_logits(LOGITS, SampleConfig(top_k=0))) == {0, 1, 2, 3, 4}


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    probs = torch.softmax(LOGITS, -1)
    assert kept(filter_logits(LOGITS, SampleConfig(top_p=0.5, temperature=1.0))) == {2}  # 0.63 alone reaches 0.5
    assert kept(filter_logits(LOGITS, SampleConfig(top_p=float(probs[2]) + 0.01, temperature=1.0))) == {0, 2}
    assert kept(filter_logits(LOGITS, SampleConfig(top_p=0.9, temperature=1.0))) == {0, 2, 4}


def test_repetition_penalty_lowers_seen_tokens_only():
    seen = torch.tensor([False, False, True, True, False])
    out = filter_logits(LOGITS, SampleConfig(repetition_penalty=2.0, temperature=1.0), seen)
    assert out.tolist() == [2.0, 0.5, 1.5, -2.0, 1.0]


def test_draws_follow_the_softmax():
    gen = torch.Generator().manual_seed(0)
    cfg = SampleConfig(temperature=1.0)
    counts = torch.bincount(torch.tensor([draw_token(LOGITS, cfg, gen) for _ in range(20_000)]), minlength=5)
    torch.testing.assert_close(counts / 20_000, torch.softmax(LOGITS, -1), atol=0.015, rtol=0)
    assert draw_token(LOGITS, SampleConfig(temperature=0), gen) == 2


@pytest.fixture(scope="module")
def completer() -> Completer:
    tok = Tokenizer(train([sample_text(20_000)], "unigram", 400))
    torch.manual_seed(0)
    model = build(ModelConfig(kind="gru", vocab_size=tok.vocab_size, embed=16, hidden=16, layers=1))
    return Completer.for_module(model, tok)


def test_seed_gives_identical_samples(completer):
    cfg = SampleConfig(max_tokens=30, temperature=1.0, seed=7)
    assert completer.complete("the model", cfg).text() == completer.complete("the model", cfg).text()
    other = SampleConfig(max_tokens=30, temperature=1.0, seed=8)
    assert completer.complete("the model", cfg).text() != completer.complete("the model", other).text()


def test_stop_string_ends_the_completion_before_it(completer):
    full = completer.complete("the", SampleConfig(max_tokens=60, seed=1)).text()
    stop = full[10:13]
    cut = completer.complete("the", SampleConfig(max_tokens=60, seed=1, stop=(stop,)))
    pieces = list(cut)
    assert "".join(pieces) == full[: full.find(stop)] and cut.reason == "stop"


def test_odd_prompts_complete(completer):
    cfg = SampleConfig(max_tokens=5, seed=0)
    for prompt in ("", "😀 中文 Grüße", "x" * 100_000):
        completion = completer.complete(prompt, cfg)
        completion.text()
        assert len(completion.tokens) <= 5 and completion.reason in ("max_tokens", "end_of_text")


def on_backend(values: np.ndarray, backend: str):
    return values if backend == "numpy" else torch.from_numpy(values)


def allowed_tokens(logits: np.ndarray, cfg: SampleConfig) -> set[int]:
    """The tokens top-k or top-p keep, worked out here from the sorted probabilities (temperature 1)."""
    order = np.argsort(-logits, kind="stable")
    if cfg.top_k:
        return set(order[: cfg.top_k].tolist())
    probs = np.exp(logits[order] - logits.max())
    mass = np.cumsum(probs / probs.sum())
    return set(order[: int(np.searchsorted(mass, cfg.top_p)) + 1].tolist())


FILTERS = [SampleConfig(top_k=5, temperature=1.0), SampleConfig(top_p=0.5, temperature=1.0)]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("cfg", FILTERS, ids=["top_k", "top_p"])
def test_a_token_that_top_k_or_top_p_removed_is_never_drawn(backend, cfg):
    logits = np.random.default_rng(0).normal(0, 2, 400).astype(np.float32)
    allowed = allowed_tokens(logits, cfg)
    assert 2 <= len(allowed) <= 20  # a few tokens kept out of 400
    filtered = filter_logits(on_backend(logits, backend), cfg)
    generator = ops_for(filtered).generator(0)
    drawn = {draw_token(filtered, cfg, generator) for _ in range(10_000)}
    assert drawn == allowed


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("cfg", FILTERS, ids=["top_k", "top_p"])
def test_a_uniform_number_at_the_top_edge_still_draws_a_kept_token(backend, cfg, monkeypatch):
    # The last vocabulary entry is the least likely: a draw that runs off the end of the cumulative sum lands on it.
    logits = np.linspace(3, -3, 50, dtype=np.float32)
    filtered = filter_logits(on_backend(logits, backend), cfg)
    ops = ops_for(filtered)
    monkeypatch.setattr(type(ops), "uniform", lambda *args: 1.0)
    assert draw_token(filtered, cfg, None) == max(allowed_tokens(logits, cfg))


@settings(max_examples=30, deadline=None)
@given(
    temperature=st.floats(0, 3),
    top_k=st.integers(0, 500),
    top_p=st.floats(0.01, 1.0),
    penalty=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**31),
)
def test_any_valid_sampling_options_draw_a_token_the_filters_kept(temperature, top_k, top_p, penalty, seed):
    cfg = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=penalty, seed=seed)
    rng = np.random.default_rng(seed)
    logits, seen = rng.normal(0, 3, 300).astype(np.float32), rng.random(300) < 0.2
    for backend in ("numpy", "torch"):
        filtered = filter_logits(on_backend(logits, backend), cfg, on_backend(seen, backend))
        token = draw_token(filtered, cfg, ops_for(filtered).generator(seed))
        assert np.isfinite(float(filtered[token]))


@settings(max_examples=30, deadline=None)
@given(
    max_tokens=st.integers(-5, 0) | st.just(1),
    temperature=st.floats(-2, -0.01) | st.just(1.0),
    top_k=st.integers(-5, -1) | st.just(0),
    top_p=st.floats(1.01, 3) | st.floats(-1, 0) | st.just(0.5),
)
def test_invalid_sampling_options_are_refused_with_the_option_named(max_tokens, temperature, top_k, top_p):
    if (max_tokens, temperature, top_k, top_p) == (1, 1.0, 0, 0.5):
        return
    with pytest.raises(RnngenError, match="(max_tokens|temperature|top_k|top_p)"):
        SampleConfig(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p)


def test_a_completion_says_why_it_ended_only_once_it_has(completer):
    completion = completer.complete("the model", SampleConfig(max_tokens=5, seed=0))
    with pytest.raises(RuntimeError, match="known once the completion is consumed"):
        _ = completion.reason
    assert completion.steps == [] and not completion.finished
    completion.text()
    assert completion.finished and completion.reason in ("max_tokens", "end_of_text") and completion.memory is not None


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"stop": ("",)}, "stop must not be empty"),
        ({"temperature": float("inf")}, "temperature must be >= 0 and finite"),
        ({"max_tokens": 10**9}, "max_tokens must be from 1 to 1,000,000"),
    ],
)
def test_empty_stops_infinite_temperatures_and_huge_lengths_are_refused(fields, message):
    with pytest.raises(RnngenError, match=message):
        SampleConfig(**fields)


def test_top_k_breaks_ties_alike_on_numpy_and_torch():
    # Three tokens tied at the top: top-k 1 and 2 keep the lowest ids on both backends, so a seed draws the same token.
    tied = [0.5, 3.0, 1.0, 3.0, 3.0, 2.0]
    for k, expected in ((1, {1}), (2, {1, 3})):
        cfg = SampleConfig(top_k=k, temperature=1.0, seed=0)
        on_numpy = filter_logits(np.asarray(tied, dtype=np.float32), cfg)
        on_torch = filter_logits(torch.tensor(tied), cfg)
        assert set(np.isfinite(on_numpy).nonzero()[0].tolist()) == expected == kept(on_torch)
    cfg = SampleConfig(top_k=1, temperature=1.0, seed=0)
    torch_ops = ops_for(torch.empty(0))
    assert draw_token(filter_logits(np.asarray(tied, dtype=np.float32), cfg), cfg, NUMPY.generator(0)) == 1
    assert draw_token(filter_logits(torch.tensor(tied), cfg), cfg, torch_ops.generator(0)) == 1


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_each_row_of_a_batch_is_filtered_and_drawn_as_it_would_be_alone(backend):
    # Rows with different options side by side: every row's filtered logits and token are those it gets alone, so a
    # request's text does not depend on the requests decoding beside it.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (5, 300)).astype(np.float32)
    seen = rng.random((5, 300)) < 0.1
    configs = [
        SampleConfig(temperature=0.0),
        SampleConfig(temperature=0.7, top_k=20),
        SampleConfig(temperature=1.3, top_p=0.6),
        SampleConfig(temperature=1.0, repetition_penalty=1.5),
        SampleConfig(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=0.8),
    ]
    options = RowOptions.of(configs)
    batch = filter_rows(on_backend(logits, backend), options, on_backend(seen, backend))
    drawn = draw_rows(batch, options, [ops_for(batch).generator(seed) for seed in range(5)])
    for i, cfg in enumerate(configs):
        alone = filter_logits(on_backend(logits[i], backend), cfg, on_backend(seen[i], backend))
        assert np.array_equal(np.asarray(batch[i]), np.asarray(alone))
        assert drawn[i] == draw_token(alone, cfg, ops_for(alone).generator(i))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_top_p_below_float32s_least_still_keeps_the_most_likely_token(backend):
    cfg = SampleConfig(top_p=1e-300, temperature=1.0)
    filtered = filter_logits(on_backend(np.asarray([0.5, 3.0, 1.0], dtype=np.float32), backend), cfg)
    assert kept(torch.as_tensor(np.asarray(filtered))) == {1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"top_k": 2**70}, "top_k must be from 1 to 1,073,741,824"),
        ({"repetition_penalty": 1e-300}, "repetition_penalty must be from 1e-06 to 1e\\+06"),
        ({"repetition_penalty": 1e300}, "repetition_penalty must be from 1e-06 to 1e\\+06"),
    ],
)
def test_options_beyond_what_the_arrays_hold_are_refused(fields, message):
    with pytest.raises(RnngenError, match=message):
        SampleConfig(**fields)
