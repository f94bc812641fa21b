"""Writing a corpus's token files: pieces of documents encoded in batches into flat arrays of token ids, and
the two ways of holding out the validation text when the source has no validation split.

Everything here reads its text as a stream of pieces (`sources.Pieces`), in one pass, so time is linear and
memory bounded by a batch whatever the length of a document.

When the size of the train split is known, its last characters are held out before encoding
(`split_by_characters`). A streamed split's size is known only at its end, so the whole split is
encoded into train.bin and the tail after the document boundary nearest the cut is moved into
val.bin afterwards (`tail_split`, `move_tail`).
"""

from __future__ import annotations

import os
import shutil
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.data.sources import Pieces
from rnngen.data.tokenizer import Tokenizer
from rnngen.errors import CorpusError, param

# Texts are encoded in batches of about BATCH_CHARS characters, spread over sentencepiece's threads.
# Documents are cut into parts of at most CHUNK_CHARS at a newline first, so that one long document is spread
# too (the newline is a piece of its own: cutting there does not change the tokens; only a single
# line longer than CHUNK_CHARS is cut inside the line). The cuts depend on the document's text only, not on
# the pieces it was read in.
BATCH_CHARS = 1_000_000
CHUNK_CHARS = 65_536

# Progress callback of a prepare: (stage, completed, total or None). Stages: load, tokenizer, encode, write.
ProgressFn = Callable[[str, int, "int | None"], None]


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32: half the disk and memory for common vocabularies."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class TokenFile:
    """Appends token ids to a flat binary file."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path = path
        self.dtype = dtype
        self.file = open(path, "wb")
        self.tokens = 0

    def write(self, ids: list[int]) -> None:
        np.asarray(ids, dtype=self.dtype).tofile(self.file)
        self.tokens += len(ids)

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


@dataclass
class SplitStats:
    """What meta.json records of a split."""

    documents: int = 0
    characters: int = 0
    tokens: int = 0
    # UTF-8 bytes in unknown pieces (the word tokenizer's words outside its vocabulary): evaluation charges
    # them 8 bits each, or text outside the vocabulary would score as nearly free.
    unknown_bytes: int = 0


def parts(pieces: Pieces) -> Iterator[tuple[str, bool]]:
    """The documents of `pieces` cut into parts of at most CHUNK_CHARS characters, each after the last newline
    that fits (else at CHUNK_CHARS), as (part, ends_document); each character is copied a bounded number of times.
    """
    carry = ""
    for piece, end in pieces:
        text = carry + piece if carry else piece
        start = 0
        while len(text) - start > CHUNK_CHARS:
            cut = text.rfind("\n", start, start + CHUNK_CHARS) + 1 or start + CHUNK_CHARS
            yield text[start:cut], False
            start = cut
        carry = text[start:] if start else text
        if end:
            yield carry, True
            carry = ""
    if carry:
        yield carry, False


def encode_into(
    pieces: Pieces,
    tok: Tokenizer,
    out: TokenFile,
    stats: SplitStats,
    progress: ProgressFn,
    threads: int,
    boundaries: tuple[array, array, array] | None = None,
) -> None:
    """Encode (text, ends_document) pieces into `out`, the end-of-text id after each document.

    `boundaries` collects (tokens, characters, unknown bytes) after each document, for a split made afterwards.
    """
    batch: list[str] = []
    ends: list[bool] = []
    size = 0

    def flush() -> None:
        nonlocal size
        ids: list[int] = []
        for piece_ids, text, end in zip(tok.encode_batch(batch, threads), batch, ends):
            ids.extend(piece_ids)
            stats.characters += len(text)
            stats.unknown_bytes += tok.unknown_bytes(text, piece_ids)
            if end:
                ids.append(tok.eot_id)
                stats.documents += 1
                if boundaries is not None:
                    boundaries[0].append(out.tokens + len(ids))
                    boundaries[1].append(stats.characters)
                    boundaries[2].append(stats.unknown_bytes)
        out.write(ids)
        stats.tokens = out.tokens
        progress("encode", stats.characters, None)
        batch.clear()
        ends.clear()
        size = 0

    for part, end in parts(pieces):
        batch.append(part)
        ends.append(end)
        size += len(part)
        if size >= BATCH_CHARS:
            flush()
    if batch:
        flush()


def split_by_characters(pieces: Pieces, total: int, val_fraction: float) -> Iterator[tuple[str, tuple[str, bool]]]:
    """The pieces of `total` characters as ("train" or "val", piece) when the last `val_fraction` of the characters
    is held out: the train pieces, then the val pieces, in one pass.

    The document that straddles the cut is cut by characters, as nanoGPT and char-rnn cut their
    single text, so a single-document corpus is split too; the train part then ends inside it.
    """
    cut = total - round(total * val_fraction)
    seen = 0
    for text, ends in pieces:
        start, end = seen, seen + len(text)
        seen = end
        if start < cut:
            yield "train", (text, ends) if end <= cut else (text[: cut - start], False)
        if end > cut:
            yield "val", (text[max(0, cut - start) :], ends)


def tail_split(boundaries: tuple[array, array, array], val_fraction: float) -> SplitStats:
    """The train split's figures when it ends at the document boundary nearest the cut (its `tokens` are the
    first held-out token's index)."""
    tokens, chars, unknown = boundaries
    if len(chars) < 2:
        raise CorpusError(
            f"a streamed corpus with a single document cannot be split: prepare it without "
            f"{param('streaming')}, or name a validation split with {param('val_split')}"
        )
    cut = chars[-1] * (1 - val_fraction)
    index = min(range(len(chars) - 1), key=lambda i: abs(chars[i] - cut))
    return SplitStats(index + 1, chars[index], tokens[index], unknown[index])


def move_tail(train_path: Path, val_path: Path, start_token: int, itemsize: int) -> None:
    """Move the tokens from `start_token` on from train.bin into val.bin."""
    with open(train_path, "r+b") as src, open(val_path, "wb") as dst:
        src.seek(start_token * itemsize)
        shutil.copyfileobj(src, dst, 16 << 20)
        dst.flush()
        os.fsync(dst.fileno())
        src.truncate(start_token * itemsize)
