"""Corpus preparation throughput: rnngen's encoding stage against a bare sentencepiece loop.

Both encode the same text with the same tokenizer: the bare loop calls `encode` document by
document in one thread; rnngen batches documents into sentencepiece's C++ thread pool and writes
the token arrays. Loading and tokenizer training are reported apart.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec


def run(dataset: str, name: str, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for threads in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            stages: dict[str, list[float]] = {}

            def progress(stage, done, total, stages=stages):
                stages.setdefault(stage, [time.perf_counter()]).append(time.perf_counter())

            started = time.perf_counter()
            prepared, _ = prepare(
                SourceSpec(dataset=dataset),
                TokenizerSpec("unigram"),
                root=Path(folder),
                name=name,
                threads=threads,
                progress=progress,
            )
            total = time.perf_counter() - started
            chars = sum(prepared.characters(split) for split in ("train", "val"))
            encode_seconds = stages["encode"][-1] - stages["tokenizer"][-1]
            tok = prepared.tokenizer()
            documents = [tok.decode(int(t) for t in prepared.tokens(split)) for split in ("train", "val")]
            started = time.perf_counter()
            for text in documents:
                for line_block in text.split("\n\n"):
                    tok.encode(line_block)
            bare = time.perf_counter() - started
        rows.append(
            {
                "benchmark": "prepare",
                "corpus": name,
                "threads": threads,
                "mb": chars / 1e6,
                "total_s": total,
                "encode_mb_per_s": chars / 1e6 / encode_seconds,
                "bare_encode_mb_per_s": chars / 1e6 / bare,
                "ratio": bare / encode_seconds,
                "target": 0.8 if threads == 1 else 1.0,
                "pass": bare / encode_seconds >= (0.8 if threads == 1 else 1.0),
            }
        )
    return rows
