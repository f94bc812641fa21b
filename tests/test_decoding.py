"""The decoding core: rows of a batch join and leave at any step, and each writes what it writes alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_text

from rnngen.config import ModelConfig, SampleConfig
from rnngen.data.tokenizer import Tokenizer, train
from rnngen.generation.completer import Completer
from rnngen.generation.decoding import Batch, Row, choice_seed
from rnngen.models import build

REQUESTS = [
    ("the model", SampleConfig(max_tokens=12, temperature=0.9, seed=1)),
    ("a", SampleConfig(max_tokens=30, temperature=1.2, top_k=30, seed=2)),
    ("", SampleConfig(max_tokens=25, temperature=0.0, repetition_penalty=1.3)),
    ("the gradient of", SampleConfig(max_tokens=40, temperature=0.7, top_p=0.8, seed=4, stop=("e t",))),
    ("x", SampleConfig(max_tokens=8, temperature=1.0, seed=5)),
]


@pytest.fixture(scope="module", params=["lstm", "gru"])
def completer(request) -> Completer:
    tok = Tokenizer(train([sample_text(20_000)], "unigram", 400))
    torch.manual_seed(0)
    model = build(ModelConfig(kind=request.param, vocab_size=tok.vocab_size, embed=32, hidden=32, layers=2))
    return Completer.for_module(model, tok)


def alone(completer: Completer, prompt: str, cfg: SampleConfig) -> tuple[str, str]:
    completion = completer.complete(prompt, cfg)
    return completion.text(), completion.reason


def test_rows_that_join_and_leave_mid_batch_write_what_they_write_alone(completer):
    batch = Batch(completer.lm, completer.tokenizer.vocab_size)
    texts: dict[int, str] = {}
    rows: list[Row] = []
    steps = 0
    waiting = list(enumerate(REQUESTS))
    while waiting or len(batch):
        if waiting and steps % 3 == 0:  # a request joins every third step, while others are half-way
            number, (prompt, cfg) = waiting.pop(0)
            memory, ids = completer.prime(prompt)
            row = Row(completer.tokenizer, cfg, completer.generator(cfg.seed), ids)
            row.number = number
            rows.append(row)
            texts[number] = ""
            batch.add(row, memory)
        for row, piece in batch.step():
            texts[row.number] += piece
        steps += 1
        assert all(not row.finished for row in batch.rows)  # a row leaves the step it ends
    assert len({len(row.steps) for row in rows}) > 2  # they ended at different steps
    for row in rows:
        prompt, cfg = REQUESTS[row.number]
        assert (texts[row.number], row.reason) == alone(completer, prompt, cfg)
    # Far fewer batched steps than tokens written: the rows shared them.
    assert steps < sum(len(row.steps) for row in rows)


def test_a_completion_remembers_the_model_after_all_its_tokens(completer):
    prompt, cfg = REQUESTS[0]
    completion = completer.complete(prompt, cfg)
    completion.text()
    assert completion.reason == "max_tokens"
    # Every token the row drew was fed, the last one included: a chat continues from all of its text.
    logits, _ = completer.lm.prime(completer.start + completer.tokenizer.encode(prompt) + completion.tokens)
    np.testing.assert_allclose(completion.memory.logits, logits, rtol=1e-4, atol=1e-5)


def test_choice_i_of_a_seeded_request_is_seeded_with_seed_plus_i():
    assert [choice_seed(7, i) for i in range(3)] == [7, 8, 9]
    assert choice_seed(None, 2) is None and choice_seed(2**64 - 1, 1) == 0


def test_beams_end_at_their_stop_string_counted_up_to_it_and_scored_with_it(completer):
    stop = ("e", "t")
    found = completer.beam_search("the model", beams=4, max_tokens=30, stop=stop)
    assert len({beam.text for beam in found}) == len(found) == 4  # identical texts are one beam
    assert [beam.score for beam in found] == sorted((beam.score for beam in found), reverse=True)
    ids = completer.start + completer.tokenizer.encode("the model")
    for beam in found:
        assert not any(s in beam.text for s in stop)
        # Its tokens are those that wrote its text; its logprob also pays for the tokens that wrote the stop string.
        assert completer.tokenizer.decode(beam.tokens).startswith(beam.text)
        assert not beam.tokens or not completer.tokenizer.decode(beam.tokens[:-1]).startswith(beam.text)
        logits, _ = completer.lm.logits_after_each(ids + beam.tokens)
        logprobs = logits - logits.max(-1, keepdims=True)
        logprobs -= np.log(np.exp(logprobs).sum(-1, keepdims=True))
        written = sum(logprobs[len(ids) - 1 + i, token] for i, token in enumerate(beam.tokens))
        assert beam.logprob < written + 1e-4


def test_a_stop_string_at_the_start_leaves_an_empty_beam_that_paid_for_it(completer):
    first = completer.beam_search("the model", beams=1, max_tokens=3)[0]
    stop = completer.tokenizer.decode(first.tokens[:1])[:1]
    beam = completer.beam_search("the model", beams=1, max_tokens=3, stop=(stop,))[0]
    assert (beam.text, beam.tokens) == ("", []) and beam.logprob < 0
