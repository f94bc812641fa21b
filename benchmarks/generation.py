"""Batch-1 generation with the default CPU model (2x384 LSTM): tokens/s, constant work, priming.

Weights are random: speed does not depend on what the model learnt. Each token is the work of one
iteration of `Completer._pieces`: the sampling filters, the draw, the token's probability, the
stream decode and the recurrent step (random weights would end a completion at an end-of-text
id at random, so the loop is run here directly rather than through `complete`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from rnngen.config import PRESETS, ModelConfig, SampleConfig
from rnngen.generation.completer import Completer
from rnngen.generation.sampling import choose, filter_logits
from rnngen.models import build


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    tok = corpus.tokenizer()
    torch.manual_seed(0)
    model = build(ModelConfig(**{**PRESETS["cpu"]["model"], "vocab_size": tok.vocab_size}))
    completer = Completer(model, tok)
    cfg = SampleConfig(temperature=0.8, top_k=40)
    generator = torch.Generator().manual_seed(0)
    context, _ = completer.prime("Studying Deep Learning is really")
    logits, state = context.logits, context.state
    seen = torch.zeros(tok.vocab_size, dtype=torch.bool)
    stream = tok.stream_decoder()
    positions = 2100 if not quick else 600
    per_token = []
    with torch.no_grad():
        for _ in range(positions):
            started = time.perf_counter()
            token = choose(filter_logits(logits, cfg, seen), cfg, generator)
            float(torch.softmax(logits, -1)[token])  # the probability Completion records per token
            seen[token] = True
            stream.push(token)
            logits, state = completer.step(torch.tensor([token]), state)
            logits = logits[0]
            per_token.append(time.perf_counter() - started)
    early = statistics.median(per_token[5:50])
    late = statistics.median(per_token[-45:])
    prompt = " ".join(["gradient"] * 3000)
    prime_tokens = len(tok.encode(prompt))
    started = time.perf_counter()
    completer.prime(prompt)
    prime_seconds = time.perf_counter() - started
    return [{"benchmark": "generate", "model": "lstm 2x384 (cpu preset)", "vocab": tok.vocab_size,
             "tokens_per_s": 1 / statistics.median(per_token), "target": 1000,
             "pass": 1 / statistics.median(per_token) >= 1000,
             "seconds_per_token_early": early, "seconds_per_token_late": late, "late_position": positions - 20,
             "late_over_early": late / early, "constant_work": late / early <= 1.10,
             "prime_tokens": prime_tokens, "prime_seconds": prime_seconds,
             "prime_tokens_per_s": prime_tokens / prime_seconds}]
