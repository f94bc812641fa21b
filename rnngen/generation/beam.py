"""Beam search over carried recurrent states: each beam is a batch row of the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rnngen.models.state import select_rows

if TYPE_CHECKING:
    from rnngen.generation.completer import Context


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


def beam_search(step, context: "Context", beams: int, max_tokens: int, eot: int,
                length_penalty: float = 1.0) -> list[tuple[list[int], float, float]]:
    """Beam search with `step(tokens [B], state) -> (logits [B, V], state)` from `context`.

    Each beam is a batch row of the state. A beam ends at the end-of-text id or after `max_tokens`;
    the search stops once `beams` beams have ended, and they are ranked by length-normalised
    log-probability. Returns (tokens, logprob,
    score) for up to `beams` beams, best first.
    """
    logprobs = torch.log_softmax(context.logits.float(), -1)[None]  # [1, V]
    state = context.state
    sequences: list[list[int]] = [[]]
    totals = torch.zeros(1)
    finished: list[tuple[list[int], float, float]] = []
    for length in range(1, max_tokens + 1):
        candidates = (totals[:, None] + logprobs.cpu()).flatten()  # [rows * V]
        top = torch.topk(candidates, min(2 * beams, candidates.numel()))
        rows, tokens, kept = [], [], []
        for score, flat in zip(top.values.tolist(), top.indices.tolist()):
            row, token = divmod(flat, logprobs.size(-1))
            sequence = sequences[row] + [token]
            if token == eot:
                finished.append((sequence[:-1], score, length_normalised(score, length, length_penalty)))
            elif len(kept) < beams:
                rows.append(row)
                tokens.append(token)
                kept.append((sequence, score))
        # Stop once `beams` beams have ended (early stopping, as Hugging Face's `early_stopping=True`).
        if not kept or len(finished) >= beams:
            break
        sequences = [sequence for sequence, _ in kept]
        totals = torch.tensor([score for _, score in kept])
        state = select_rows(state, torch.tensor(rows))
        logits, state = step(torch.tensor(tokens), state)
        logprobs = torch.log_softmax(logits.float(), -1)
    else:
        finished += [(sequence, float(total), length_normalised(float(total), max_tokens, length_penalty))
                     for sequence, total in zip(sequences, totals)]
    finished.sort(key=lambda item: -item[2])
    return finished[:beams]

