"""Beam search over carried recurrent states: each beam is a batch row of the state.

Written once for NumPy arrays and torch tensors alike (`rnngen.generation.arrays`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    step,
    memory: ReadState,
    beams: int,
    max_tokens: int,
    eot: int,
    length_penalty: float = 1.0,
    cut: Callable[[list[int]], int | None] = lambda tokens: None,
) -> list[tuple[list[int], float, float]]:
    """Beam search with `step(tokens [B], state) -> (logits [B, V], state)` from `memory`.

    Each beam is a batch row of the state. At each length the best 2 x `beams` extensions are ranked: an
    end-of-text among the first `beams` of them ends a hypothesis (as Hugging Face's rule), and so does one whose
    text reaches a stop string, which `cut(tokens)` reports as the number of its tokens that wrote the text before
    the stop string: it keeps those tokens and, as an end-of-text does, is scored with the tokens that ended it; the
    best `beams` others go on. Hypotheses that end
    with the same tokens are one. The search stops once `beams` hypotheses have ended, or at `max_tokens` (without
    computing a step past it). Returns (tokens, logprob, score) for up to `beams` hypotheses, best length-normalised
    score first.
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
    paths: list[tuple[list[int], float]] = [([], 0.0)]  # each hypothesis: its tokens, its summed logprob
    totals: Any = ops.floats_like([0.0], logprobs)
    finished: dict[tuple[int, ...], tuple[list[int], float, float]] = {}

    def end(tokens: list[int], logprob: float, length: int) -> None:
        ended = (tokens, logprob, length_normalised(logprob, length, length_penalty))
        if tuple(tokens) not in finished or finished[tuple(tokens)][2] < ended[2]:
            finished[tuple(tokens)] = ended

    for length in range(1, max_tokens + 1):
        candidates = (totals[:, None] + logprobs).flatten()  # [rows * V]
        values, indices = ops.topk(candidates, min(2 * beams, candidates.shape[0]))
        rows, tokens, kept = [], [], []
        for rank, (score, flat) in enumerate(zip(values.tolist(), indices.tolist())):
            row, token = divmod(flat, vocab)
            sequence = paths[row][0] + [token]
            written = None if token == eot else cut(sequence)
            if token == eot or written is not None:
                if rank < beams:  # an ending pays for the tokens that made it: the end of text, the stop string
                    end(sequence[:-1] if token == eot else sequence[:written], score, length)
            elif len(kept) < beams:
                rows.append(row)
                tokens.append(token)
                kept.append((sequence, score))
        # Stop once `beams` hypotheses have ended (early stopping, as Hugging Face's `early_stopping=True`).
        if not kept or len(finished) >= beams:
            break
        if length == max_tokens:  # the kept hypotheses end here: no step is computed past the last length
            for sequence, score in kept:
                end(sequence, score, length)
            break
        paths = kept
        totals = ops.floats_like([score for _, score in kept], logprobs)
        state = select_rows(state, rows)
        logits, state = step(ops.ids(tokens), state)
        logprobs = ops.log_softmax(logits)
    return sorted(finished.values(), key=lambda item: -item[2])[:beams]
