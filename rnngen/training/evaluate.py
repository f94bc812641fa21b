"""Validation: loss, perplexity and bits per character of a model over a split, carrying the state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.models import RecurrentLM
from rnngen.models.precision import autocast
from rnngen.training import distributed
from rnngen.training.bits import bits_per_character

# Tokens each stream after the first reads before it is scored: it starts with the state this much context gives
# rather than none, so the number of streams (`rows`) leaves the figures all but unchanged (they differ by context
# older than this). A stream scores at least ROW_SHARE times as many, so the extra reading costs at most 1/ROW_SHARE.
WARMUP, ROW_SHARE = 128, 4


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits [rows, T, vocab] against the next tokens [rows, T], in float32 (the softmax is
    in here)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)


@torch.no_grad()
def score(
    model: RecurrentLM,
    tokens: np.ndarray,
    characters: int,
    rows: int,
    seq_len: int,
    max_tokens: int | None,
    device: torch.device,
    world: distributed.World = distributed.World(),
    unknown_bytes: int = 0,
    progress: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Loss (nats/token), perplexity and bits per character over a split, carrying the state: every token read after
    the first is predicted exactly once (`tokens` counts them), whatever `rows` and `seq_len`.

    The split is cut into at most `rows` contiguous streams read side by side, `seq_len` tokens at a time; each
    stream after the first first reads the WARMUP tokens before its own, unscored, and the few tokens left over
    after the last are read as one more, shorter stream. With `max_tokens`, only the first `max_tokens` tokens are
    read (`bounded` says so), and bits per character use the matching share of the split's characters. With
    several processes every rank reads its share of the streams and the sums are added over the ranks: every rank
    calls this and gets the same figures. The split's `unknown_bytes` (text the word tokenizer cannot spell) are
    charged as `bits_per_character` charges them, in the share read. `progress(done, total)` is told the tokens
    this process has scored after each window. The forward pass runs in `precision` (resolved: fp32 or bf16,
    rnngen.models.precision): a score taken apart from training is full precision, a run's own evaluations use
    the run's.
    """
    total = len(tokens)
    used = min(total, max_tokens) if max_tokens else total
    predicted = used - 1
    rows = max(1, min(rows, (predicted - WARMUP) // (ROW_SHARE * WARMUP)))
    warmup = WARMUP if rows > 1 else 0
    length = (predicted - warmup) // rows  # each stream's scored tokens; the first also scores the warm-up's
    # Stream r reads from token r * length: the first `warmup` predictions of every stream but the first were
    # scored by the stream before it. The tail continues where the last stream ends.
    mine = np.arange(rows)[world.rank :: world.size]
    streams = [(mine * length, np.where(mine == 0, 0, warmup), warmup + length)] if len(mine) else []
    tail = rows * length + warmup  # the last token the streams predict
    if tail < predicted and world.is_main:
        begin = max(0, tail - WARMUP)
        streams.append((np.array([begin]), np.array([tail - begin]), predicted - begin))
    was_training = model.training
    model.eval()
    sums, done = [], 0
    for starts, skips, steps in streams:
        state, skip = None, torch.from_numpy(skips).to(device)[:, None]
        for start in range(0, steps, seq_len):
            span = np.arange(start, min(start + seq_len, steps) + 1)
            chunk = torch.from_numpy(np.asarray(tokens[starts[:, None] + span], dtype=np.int64)).to(device)
            with autocast(device, precision):
                logits, state = model(chunk[:, :-1], state)
            losses = next_token_loss(logits, chunk[:, 1:], reduction="none").view(len(starts), -1)
            scored = torch.arange(start, start + losses.size(1), device=device)[None, :] >= skip
            sums.append(torch.where(scored, losses, 0.0).sum())
            done += int(np.maximum(span[-1] - np.maximum(skips, start), 0).sum())
            if progress:
                progress(done, predicted)
    model.train(was_training)
    # Each window's sum is float32 on the device; they are added in float64 on the host (Python
    # floats), since Apple's MPS has no float64 tensors.
    nll = distributed.total(sum(torch.stack(sums).tolist()) if sums else 0.0, device)
    loss = nll / predicted
    return {
        "loss": loss,
        "ppl": math.exp(min(loss, 700.0)),
        "bpc": bits_per_character(nll, unknown_bytes, characters, predicted / total),
        "tokens": predicted,
        "bounded": used < total,
    }
