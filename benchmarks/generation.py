"""Batch-1 generation with the default CPU model (the `cpu` preset's LSTM): tokens/s, constant work, priming.

Weights are random: speed does not depend on what the model learnt. Random weights would end a completion at the
end-of-text id at random, so that id is made impossible (`endless_model`) and every completion writes its whole
budget. Each token is one `Batch.step` of a batch of one row on the CPU (NumPy), what `Completion` runs per token:
the sampling filters, the draw, the token's probability, the stream decode and the recurrent step. The torch
model's fused pass primes the same prompt in the same run, as the reference.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import torch

from rnngen.config import PRESETS, SampleConfig
from rnngen.data.tokenizer import Tokenizer
from rnngen.generation.completer import Completer
from rnngen.generation.decoding import Batch, Row
from rnngen.generation.torch_lm import TorchLM
from rnngen.models import build

# A logit no draw can reach, for the end-of-text id of a model with random weights.
NEVER = -1e9


def endless_model(tok: Tokenizer) -> torch.nn.Module:
    """The `cpu` preset's model over `tok`'s vocabulary with random weights (seed 0), whose head can never give the
    end-of-text id: a completion on it writes exactly its `max_tokens`."""
    torch.manual_seed(0)
    model = build(dataclasses.replace(PRESETS["cpu"].model, vocab_size=tok.vocab_size))
    with torch.no_grad():
        model.head.bias[tok.eot_id] = NEVER
    return model


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    tok = corpus.tokenizer()
    model = endless_model(tok)
    completer = Completer.for_module(model, tok)  # on the CPU: the NumPy model
    positions = 2100 if not quick else 600
    cfg = SampleConfig(max_tokens=positions, temperature=0.8, top_k=40)
    memory, prompt_ids = completer.prime("Studying Deep Learning is really")
    batch = Batch(completer.lm, tok.vocab_size)
    batch.add(Row(tok, cfg, completer.generator(0), prompt_ids), memory)
    per_token = []
    for _ in range(positions):
        started = time.perf_counter()
        batch.step()
        per_token.append(time.perf_counter() - started)
    early = statistics.median(per_token[5:50])
    late = statistics.median(per_token[-45:])
    prompt = " ".join(["gradient"] * 3000)
    prime_tokens = len(tok.encode(prompt))
    prime_seconds = _best(lambda: completer.prime(prompt), 3)
    torch_prime = Completer(TorchLM(model), tok)
    torch_prime_seconds = _best(lambda: torch_prime.prime(prompt), 3)
    tokens_per_s = 1 / statistics.median(per_token)
    shape = model.config
    return [
        {
            "benchmark": "generate",
            "model": f"{shape.kind} {shape.layers}x{shape.hidden} (cpu preset)",
            "vocab": tok.vocab_size,
            "tokens_per_s": tokens_per_s,
            "target": 4000,
            "pass": tokens_per_s >= 4000,
            "seconds_per_token_early": early,
            "seconds_per_token_late": late,
            "late_position": positions - 20,
            "late_over_early": late / early,
            "constant_work": late / early <= 1.10,
            "prime_tokens": prime_tokens,
            "prime_seconds": prime_seconds,
            "prime_target_s": 0.3,
            "prime_pass": prime_seconds <= 0.3,
            "prime_tokens_per_s": prime_tokens / prime_seconds,
            "torch_fused_prime_seconds": torch_prime_seconds,
        }
    ]


def _best(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls (the machine is shared: the minimum is the least disturbed)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)
