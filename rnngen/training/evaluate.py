"""Validation: loss, perplexity and bits per character of a model over a split, carrying the state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.models import RecurrentLM
from rnngen.models import device as devices
from rnngen.training import distributed
from rnngen.training.bits import bits_per_character


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits [rows, T, vocab] against the next tokens [rows, T], in float32 (the softmax is
    in here)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)


@torch.no_grad()
def evaluate(
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
    """Loss (nats/token), perplexity and bits per character over a split, carrying the state.

    The split is cut into `rows` contiguous streams; the first token of each stream is context
    only. With `max_tokens`, only the first `max_tokens` tokens are read (`bounded` says so), and
    bits per character use the matching share of the split's characters. With several processes
    every rank reads its share of the streams and the sums are added over the ranks: every rank
    calls this and gets the same figures. The split's `unknown_bytes` (text the word tokenizer cannot spell)
    are charged as `bits_per_character` charges them, in the share read. `progress(done, total)` is told the
    tokens predicted so far after each window. The forward pass runs in `precision` (config.PRECISIONS): a
    score taken apart from training is full precision, a run's own evaluations use the run's.
    """
    total = len(tokens)
    used = min(total, max_tokens) if max_tokens else total
    rows = max(1, min(rows, used // (seq_len + 1)))
    row_len = used // rows
    streams = tokens[: rows * row_len].reshape(rows, row_len)  # still a memory map: read window by window
    mine = streams[world.rank :: world.size]
    was_training = model.training
    model.eval()
    state, sums = None, []
    for start in range(0, row_len - 1, seq_len) if len(mine) else ():
        chunk = torch.from_numpy(np.asarray(mine[:, start : start + seq_len + 1], dtype=np.int64)).to(device)
        with devices.autocast(device, precision):
            logits, state = model(chunk[:, :-1], state)
        sums.append(next_token_loss(logits, chunk[:, 1:], reduction="sum"))
        if progress:
            progress(rows * min(start + seq_len, row_len - 1), rows * (row_len - 1))
    model.train(was_training)
    # Each window's sum is float32 on the device; they are added in float64 on the host (Python
    # floats), since Apple's MPS has no float64 tensors.
    nll = distributed.total(sum(torch.stack(sums).tolist()) if sums else 0.0, device)
    predicted = rows * (row_len - 1)
    loss = nll / predicted
    return {
        "val_loss": loss,
        "val_ppl": math.exp(min(loss, 700.0)),
        "val_bpc": bits_per_character(nll, unknown_bytes, characters, predicted / total),
        "val_tokens": predicted,
        "bounded": used < total,
    }
