"""Which tokenizer a prepared corpus gets: what was asked for, a vocabulary size the corpus can fill,
and the sample of the train text the tokenizer is trained on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnngen.data import tokenizer
from rnngen.data.sources import Pieces
from rnngen.errors import CorpusError, param

# The tokenizer is trained on at most this many characters, taken evenly across the train split in
# pieces of SAMPLE_PIECE_CHARS (from its start when the split's size is not known: streaming).
TOKENIZER_SAMPLE_CHARS = 4_000_000
SAMPLE_PIECE_CHARS = 10_000


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer `prepare` trains; `vocab_size` None sizes it to the corpus. With `from_path` (a
    tokenizer.model file) none is trained: the corpus is encoded with that one, so vocabularies match."""

    kind: str = "unigram"
    vocab_size: int | None = None
    from_path: str | None = None


def tokenizer_spec(kind: str | None, vocab_size: int | None, from_path: str | None) -> TokenizerSpec:
    """The tokenizer of `prepare`'s options (`kind` None: the default); one reused from a file takes neither
    a kind nor a size, and is refused with them rather than silently keeping its own."""
    if from_path is not None and (kind is not None or vocab_size is not None):
        given = [param(name) for name, value in (("tokenizer", kind), ("vocab_size", vocab_size)) if value is not None]
        raise CorpusError(
            f"{param('tokenizer_from')} encodes with that tokenizer as it is, its type and size included: "
            f"drop {' and '.join(given)}"
        )
    if kind == "char" and vocab_size is not None:
        # sentencepiece keeps every character seen whatever the size: a size would be ignored, or fail as too small.
        raise CorpusError(
            f"{param('tokenizer')} char takes every character of the text as its vocabulary: drop {param('vocab_size')}"
        )
    return TokenizerSpec(kind or TokenizerSpec.kind, vocab_size, from_path)


def default_vocab_size(kind: str, train_chars: int | None) -> int:
    """A vocabulary that the corpus can fill: larger corpora get more pieces."""
    if kind == "char":
        return 4096  # an upper bound only: the vocabulary is every character seen
    if kind == "word":
        return 32768 if train_chars is None or train_chars >= 20_000_000 else 8192  # at most the words seen
    if train_chars is None:
        return 8192
    for limit, size in ((2_000_000, 1024), (20_000_000, 4096), (200_000_000, 8192)):
        if train_chars < limit:
            return size
    return 16384


def sample_text(pieces: Pieces, total: int | None) -> list[str]:
    """About TOKENIZER_SAMPLE_CHARS characters of the documents in `pieces`: every document when they fit, else
    pieces of SAMPLE_PIECE_CHARS (counted from each document's start) spread evenly over the `total` characters,
    so that the tokenizer sees the end of the corpus as well as its start."""
    limit = TOKENIZER_SAMPLE_CHARS
    sample: list[str] = []
    if total is None or total <= limit:
        document: list[str] = []
        size = 0
        for text, end in pieces:
            document.append(text[: limit - size])
            size += len(document[-1])
            if end or size >= limit:
                sample.append("".join(document))
                document = []
                if size >= limit:
                    break
        if document:
            sample.append("".join(document))
        return sample
    share, piece_index = limit / total, 0
    for text in _aligned(pieces, SAMPLE_PIECE_CHARS):
        for start in range(0, len(text), SAMPLE_PIECE_CHARS):
            # Piece i is taken when floor((i + 1) * share) steps up: a share of the pieces, evenly spaced.
            if int((piece_index + 1) * share) > int(piece_index * share):
                sample.append(text[start : start + SAMPLE_PIECE_CHARS])
            piece_index += 1
    return sample


def _aligned(pieces: Pieces, unit: int) -> Iterator[str]:
    """The documents of `pieces` in texts that start at a multiple of `unit` characters into their document."""
    carry = ""
    for piece, end in pieces:
        text = carry + piece if carry else piece
        whole = len(text) if end else len(text) - len(text) % unit
        if whole:
            yield text[:whole]
        carry = text[whole:]
    if carry:
        yield carry


def train_tokenizer(sample: list[str], spec: TokenizerSpec, train_chars: int | None, threads: int) -> bytes:
    """The serialized tokenizer trained on `sample`, of the size asked for, else of the default size for
    `train_chars` characters: more by the pieces its characters need when they outnumber the default (Hangul,
    Chinese), and no more than the sample fills."""
    if spec.vocab_size is not None:
        return tokenizer.train(sample, spec.kind, spec.vocab_size, threads)
    size = default_vocab_size(spec.kind, train_chars)
    try:
        return _filled(sample, spec.kind, size, threads)
    except tokenizer.VocabTooSmall as exc:
        # A piece for each character, and the default's room beyond them for longer pieces.
        return _filled(sample, spec.kind, exc.smallest + size, threads)


def _filled(sample: list[str], kind: str, size: int, threads: int) -> bytes:
    """A tokenizer of `size` pieces, or of the largest size that `sample` fills when that is smaller."""
    try:
        return tokenizer.train(sample, kind, size, threads)
    except tokenizer.VocabTooLarge as exc:
        return tokenizer.train(sample, kind, exc.largest, threads)


def recorded_kind(model_path: Path) -> str:
    """The tokenizer type recorded next to a tokenizer.model (a corpus's meta.json, a run's config.json)."""
    folder = model_path.parent
    for file, keys in (("meta.json", ("tokenizer", "type")), ("config.json", ("corpus", "tokenizer", "type"))):
        try:
            value: Any = json.loads((folder / file).read_text())
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str):
            return value
    return "sentencepiece"
