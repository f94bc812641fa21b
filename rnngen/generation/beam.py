"""Beam search over carried recurrent states: each beam is a batch row of the state.

Written once for NumPy arrays and torch tensors alike (`rnngen.generation.arrays`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnngen.errors import RnngenError, param
from rnngen.generation.arrays import ops_for
from rnngen.generation.read_state import ReadState
from rnngen.models.state import select_rows


@dataclass
class Beam:
    """A finished beam: its text, summed log-probability and length-normalised score."""

    text: str
    tokens: list[int]
    logprob: float
    score: float


def length_normalised(logprob: float, length: int, penalty: float) -> float:
    """GNMT's length normalisation (Wu et al. 2016): logprob / ((5 + length) / 6) ** penalty."""
    return logprob / ((5 + length) / 6) ** penalty


def beam_search(
    step, memory: ReadState, beams: int, max_tokens: int, eot: int, length_penalty: float = 1.0
) -> list[tuple[list[int], float, float]]:
    """Beam search with `step(tokens [B], state) -> (logits [B, V], state)` from `memory`.

    Each beam is a batch row of the state. At each length
    the best 2 x `beams` extensions are ranked: an end-of-text among the first `beams` of them ends
    a hypothesis (as Hugging Face's rule), the best `beams` others go on. The search stops once
    `beams` hypotheses have ended, or at `max_tokens` (without computing a step past it). Returns
    (tokens, logprob, score) for up to `beams` hypotheses, best length-normalised score first.
    """
    if not math.isfinite(length_penalty):
        raise RnngenError(
            f"{param('length_penalty')} must be a finite number (1 is the usual, 0 ranks by logprob), "
            f"got {length_penalty}"
        )
    ops = ops_for(memory.logits)
    logprobs = ops.log_softmax(memory.logits)[None]  # [1, V]
    vocab = logprobs.shape[-1]
    state = memory.state
    sequences: list[list[int]] = [[]]
    totals: Any = ops.floats_like([0.0], logprobs)
    finished: list[tuple[list[int], float, float]] = []
    for length in range(1, max_tokens + 1):
        candidates = (totals[:, None] + logprobs).flatten()  # [rows * V]
        values, indices = ops.topk(candidates, min(2 * beams, candidates.shape[0]))
        rows, tokens, kept = [], [], []
        for rank, (score, flat) in enumerate(zip(values.tolist(), indices.tolist())):
            row, token = divmod(flat, vocab)
            sequence = sequences[row] + [token]
            if token == eot:
                if rank < beams:
                    finished.append((sequence[:-1], score, length_normalised(score, length, length_penalty)))
            elif len(kept) < beams:
                rows.append(row)
                tokens.append(token)
                kept.append((sequence, score))
        # Stop once `beams` hypotheses have ended (early stopping, as Hugging Face's `early_stopping=True`).
        if not kept or len(finished) >= beams:
            break
        if length == max_tokens:  # the kept hypotheses end here: no step is computed past the last length
            finished += [
                (sequence, score, length_normalised(score, length, length_penalty)) for sequence, score in kept
            ]
            break
        sequences = [sequence for sequence, _ in kept]
        totals = ops.floats_like([score for _, score in kept], logprobs)
        state = select_rows(state, rows)
        logits, state = step(ops.ids(tokens), state)
        logprobs = ops.log_softmax(logits)
    finished.sort(key=lambda item: -item[2])
    return finished[:beams]
