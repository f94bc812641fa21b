"""The contents of a corpus folder, built from a source: the tokenizer trained (or taken from another
corpus or run), both splits encoded into token files, and the meta that describes them.

`prepare` (rnngen.data.preparing) builds into a temporary folder and moves it into place.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rnngen import __version__
from rnngen.data import sources
from rnngen.data.encoding import (
    ProgressFn,
    SplitStats,
    TokenFile,
    encode_into,
    move_tail,
    split_by_characters,
    tail_split,
    token_dtype,
)
from rnngen.data.reading import META_FORMAT
from rnngen.data.sources import Pieces, SourceSpec
from rnngen.data.tokenizer import Tokenizer
from rnngen.data.vocabulary import TokenizerSpec, recorded_kind, sample_text, train_tokenizer
from rnngen.errors import CorpusError, param


def build_corpus(
    spec: SourceSpec, tok_spec: TokenizerSpec, work: Path, val_fraction: float, threads: int, progress: ProgressFn
) -> dict[str, Any]:
    """Write tokenizer.model, train.bin and val.bin into `work` and return their meta (without name and request)."""
    progress("load", 0, None)
    source = sources.open_source(spec, cache_dir=work / ".datasets-cache")
    progress("load", 1, 1)
    # Validation text: the source's validation split, else the last characters of the train split when its
    # size is known, else (streaming) the tail of train.bin, moved into val.bin once the split is encoded.
    by_characters = source.val is None and source.train_chars is not None
    by_tail = source.val is None and source.train_chars is None

    def split() -> Iterator[tuple[str, tuple[str, bool]]]:
        """The source's pieces as (split, piece), train first: read twice (tokenizer sample, then encoding)."""
        if by_characters:
            return split_by_characters(source.train, source.train_chars, val_fraction)
        train = (("train", piece) for piece in source.train)
        return train if source.val is None else itertools.chain(train, (("val", piece) for piece in source.val))

    def train_docs() -> Pieces:
        return (piece for _, piece in itertools.takewhile(lambda item: item[0] == "train", split()))

    # A text of only whitespace is no text, as an empty one is: refused here, before a tokenizer or a run is trained
    # on it. Reading stops at the first piece that holds text.
    if not any(text and not text.isspace() for text, _ in train_docs()):
        raise CorpusError(
            f"{spec.dataset} has no text in split {source.info['train_split']!r} (column {source.text_column!r})"
        )

    progress("tokenizer", 0, None)
    kind = tok_spec.kind
    if tok_spec.from_path:
        model = Tokenizer.load(Path(tok_spec.from_path)).proto
        kind = recorded_kind(Path(tok_spec.from_path))
    else:
        sample = sample_text(train_docs(), source.train_chars)
        model = train_tokenizer(sample, tok_spec, source.train_chars, threads)
        del sample
    (work / "tokenizer.model").write_bytes(model)
    tok = Tokenizer(model)
    progress("tokenizer", 1, 1)

    dtype = token_dtype(tok.vocab_size)
    stats = {"train": SplitStats(), "val": SplitStats()}
    boundaries = (array("q"), array("q"), array("q")) if by_tail else None
    outs = {name: TokenFile(work / f"{name}.bin", dtype) for name in stats}
    for name, pieces in itertools.groupby(split(), key=lambda item: item[0]):
        encode_into((piece for _, piece in pieces), tok, outs[name], stats[name], progress, threads, boundaries)
    for out in outs.values():
        out.close()
    if not by_tail:
        val_from = f"split {source.val_split}" if source.val_split else f"last {val_fraction:.0%} of the characters"
    else:
        train = tail_split(boundaries, val_fraction)
        move_tail(work / "train.bin", work / "val.bin", train.tokens, dtype.itemsize)
        total = stats["train"]
        stats["val"] = SplitStats(
            total.documents - train.documents,
            total.characters - train.characters,
            total.tokens - train.tokens,
            total.unknown_bytes - train.unknown_bytes,
        )
        stats["train"] = train
        val_from = f"last {val_fraction:.0%} of the documents"
    if source.val_split is None and "test" in source.info.get("splits", ()):
        val_from += " (split test left for the end: --val-split test validates on it)"
    for split, split_stats in stats.items():
        if split_stats.tokens == 0:
            raise CorpusError(
                f"the {split} split of {spec.dataset} is empty: use a larger corpus or another {param('val_fraction')}"
            )
    return {
        "format": META_FORMAT,
        "rnngen_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source.info,
        "validation_from": val_from,
        "tokenizer": {
            "type": kind,
            "vocab_size": tok.vocab_size,
            "sha256": tok.sha256,
            "lossless": tok.lossless,
            **({"from": str(tok_spec.from_path)} if tok_spec.from_path else {}),
        },
        "dtype": dtype.name,
        "splits": {split: asdict(split_stats) for split, split_stats in stats.items()},
        "fingerprint": fingerprint(work),
    }


def fingerprint(folder: Path) -> str:
    """The sha256 of the corpus's tokens (train.bin, then val.bin): a run records it, and resuming on a corpus
    rebuilt from other text is refused, while a rebuild from the same text gives the same fingerprint."""
    digest = hashlib.sha256()
    for split in ("train", "val"):
        digest.update(_file_sha256(folder / f"{split}.bin"))
    return digest.hexdigest()


def _file_sha256(path: Path) -> bytes:
    """The sha256 of a file read in 1 MiB blocks, so memory stays flat (hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.digest()
