"""Bits per character: the figure `rnngen evaluate`, training's evaluations and `Model.score` all report.

No torch here: NumPy completion scores text with the same formula as the torch evaluation of a split.
"""

from __future__ import annotations

import math

# What a byte costs spelt without a model. Text the word tokenizer cannot spell is one unknown piece however long
# it is, so its probability alone would make text outside the vocabulary look predictable: each byte of it is
# charged this on top.
BITS_PER_UNKNOWN_BYTE = 8


def bits_per_character(nats: float, unknown_bytes: float, characters: float, share: float = 1.0) -> float:
    """Bits per character of text whose tokens cost `nats` (their negative log-likelihood) where `share` of it
    was read: `unknown_bytes` and `characters` count the whole text, and the share read is charged its part."""
    return (nats / math.log(2) + BITS_PER_UNKNOWN_BYTE * unknown_bytes * share) / (characters * share)
