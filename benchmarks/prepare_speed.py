"""Corpus preparation throughput: rnngen's encoding stage against a bare sentencepiece loop.

`run` (the `prepare` benchmark) prepares tiny shakespeare or pydocs: the bare loop calls `encode` document by
document in one thread; rnngen batches documents into sentencepiece's C++ thread pool and writes the token arrays.

`run_sizes` (the `prepare_speed` benchmark) prepares one generated single-file text per size (100M, 500M, 2G
bytes), each in a process of its own so that its peak memory is its own, and encodes the same file with a bare
sentencepiece loop in another process with the same thread count and the same tokenizer: pieces of the file
cut at line ends, batched into `encode(..., num_threads=threads)`, tokens thrown away. The ratio compares equal
text (the whole file, both splits): bare seconds / rnngen's encoding seconds, 1.0 = the tokenizer's own speed.
`cpu_ratio` compares the CPU seconds of both (all threads), which other processes on a shared machine change
less than the wall-clock seconds; it does not see a thread left waiting, which `ratio` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec

SEED = 0
# The generated text: lines of words drawn (Zipf-like) from a generated vocabulary, a fifth of them Hangul, from
# about as many syllables as Korean text commonly uses.
VOCABULARY, POOL_LINES, SYLLABLES = 30_000, 200_000, 1500
TARGET_RATIO = 0.8

PREPARE = r"""
import json, resource, sys, time
from pathlib import Path
from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
stages, cpu = {}, {}
def progress(stage, done, total):
    stages.setdefault(stage, [time.perf_counter()]).append(time.perf_counter())
    cpu.setdefault(stage, [time.process_time()]).append(time.process_time())
started = time.perf_counter()
corpus, _ = prepare(SourceSpec(dataset=sys.argv[1]), root=Path(sys.argv[2]), name=sys.argv[3].lower(),
                    threads=int(sys.argv[4]), progress=progress)
total = time.perf_counter() - started
print(json.dumps({
    "total_s": total,
    "load_s": stages["tokenizer"][0] - started,
    "tokenizer_s": stages["tokenizer"][-1] - stages["tokenizer"][0],
    "encode_s": stages["encode"][-1] - stages["tokenizer"][-1],
    "encode_cpu_s": cpu["encode"][-1] - cpu["tokenizer"][-1],
    "characters": sum(corpus.characters(split) for split in ("train", "val")),
    "tokens": sum(corpus.meta["splits"][split]["tokens"] for split in ("train", "val")),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

BARE = r"""
import json, sys, time
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
threads, chunk, batch_chars = int(sys.argv[3]), 65536, 1_000_000
started, cpu = time.perf_counter(), time.process_time()
tokens = 0
with open(sys.argv[1], encoding="utf-8") as file:
    while block := file.read(batch_chars):
        block += file.readline()
        pieces, start = [], 0
        while start < len(block):
            cut = block.rfind("\n", start, start + chunk) + 1 or start + chunk
            pieces.append(block[start:cut])
            start = cut
        tokens += sum(len(ids) for ids in sp.encode(pieces, num_threads=threads))
print(json.dumps({"bare_s": time.perf_counter() - started, "bare_cpu_s": time.process_time() - cpu}))
"""


def size_bytes(size: str) -> int:
    """'100M' -> 100_000_000, '2G' -> 2_000_000_000."""
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    size = size.strip().upper()
    return int(float(size[:-1]) * units[size[-1]]) if size[-1] in units else int(size)


def generate_text(path: Path, size: int, seed: int = SEED) -> None:
    """A single text file of about `size` bytes from `seed`: lines of words from a generated vocabulary, some Hangul."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    latin = ["".join(rng.choice(letters, rng.integers(1, 11))) for _ in range(VOCABULARY)]
    hangul = [
        "".join(chr(0xAC00 + c) for c in rng.integers(0, SYLLABLES, rng.integers(1, 4))) for _ in range(VOCABULARY)
    ]
    cdf = np.cumsum(1 / np.arange(1, VOCABULARY + 1))
    lengths = rng.integers(3, 25, POOL_LINES)
    drawn = np.searchsorted(cdf, rng.random(lengths.sum()) * cdf[-1])
    korean = rng.random(POOL_LINES) < 0.2
    pool, start = [], 0
    for number, length in enumerate(lengths):
        words = hangul if korean[number] else latin
        line = " ".join(words[i] for i in drawn[start : start + length])
        start += length
        pool.append(line[0].upper() + line[1:] + ("." if number % 10 < 7 else ""))
    line_bytes = np.array([len(line.encode()) + 1 for line in pool])
    written = 0
    with open(path, "w", encoding="utf-8") as file:
        while written < size:
            lines = rng.integers(0, POOL_LINES, 50_000)
            lines = lines[: np.searchsorted(np.cumsum(line_bytes[lines]), size - written) + 1]
            file.write("\n".join([pool[i] for i in lines]) + "\n")
            written += int(line_bytes[lines].sum())


def run_sizes(sizes: list[str], threads: int | None = None, keep: Path | None = None) -> list[dict[str, Any]]:
    """One row per size: prepare's time, MB/s, encoding rate against the bare loop, and peak memory. With `keep`,
    the texts and corpora are kept there (`SIZE.txt`, `corpora/SIZE`) to measure training and evaluation on."""
    threads = threads or os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() if keep is None else contextlib.nullcontext(keep) as scratch:
        corpora = Path(scratch) / "corpora"
        for size in sizes:
            text, name = Path(scratch) / f"{size}.txt", size.lower()
            Path(scratch).mkdir(parents=True, exist_ok=True)
            generate_text(text, size_bytes(size))
            mb = text.stat().st_size / 1e6
            shutil.rmtree(corpora / name, ignore_errors=True)
            prepared = _child([sys.executable, "-c", PREPARE, str(text), str(corpora), name, str(threads)])
            model = corpora / name / "tokenizer.model"
            bare = _child([sys.executable, "-c", BARE, str(text), str(model), str(threads)])
            if keep is None:
                text.unlink()
            ratio = bare["bare_s"] / prepared["encode_s"]
            rows.append(
                {
                    "benchmark": "prepare_speed",
                    "size": size,
                    "mb": round(mb, 1),
                    "threads": threads,
                    **{key: round(value, 2) if isinstance(value, float) else value for key, value in prepared.items()},
                    "mb_per_s": round(mb / prepared["total_s"], 2),
                    "encode_mb_per_s": round(mb / prepared["encode_s"], 2),
                    "bare_s": round(bare["bare_s"], 2),
                    "bare_cpu_s": round(bare["bare_cpu_s"], 2),
                    "bare_mb_per_s": round(mb / bare["bare_s"], 2),
                    "ratio": round(ratio, 3),
                    "cpu_ratio": round(bare["bare_cpu_s"] / prepared["encode_cpu_s"], 3),
                    "target": TARGET_RATIO,
                    "pass": ratio >= TARGET_RATIO,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _child(command: list[str]) -> dict[str, Any]:
    """The JSON line a measuring process prints (its stderr shown when it fails)."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{command[:2]} failed:\n{done.stderr}")
    return json.loads(done.stdout)


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
