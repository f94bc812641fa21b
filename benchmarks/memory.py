"""Training memory does not grow with the corpus: peak RSS on a corpus and on one 10x larger.

The token arrays are memory-mapped and training reads only the windows it needs, so the
larger corpus should stay within 1.2x of the smaller one's peak. Each run is its own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import prepared

RUN = r"""
import json, resource, sys, tempfile
from pathlib import Path
from rnngen.data.reading import Corpus
from rnngen.pipeline import train
corpus = Corpus.open(Path(sys.argv[1]))
with tempfile.TemporaryDirectory() as folder:
    train(corpus, "cpu", checkpoints=folder, name="run", steps=30, eval_every=30, eval_tokens=20000)
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(text: Path, root: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.txt"
        big.write_text(text.read_text() * 10)
        small_corpus = prepared(root, str(text), "char", None, "shakespeare-char")
        big_corpus = prepared(Path(folder), str(big), "char", None, "shakespeare-x10")
        peaks = {}
        for name, corpus in (("1x", small_corpus), ("10x", big_corpus)):
            done = subprocess.run(
                [sys.executable, "-c", RUN, str(corpus.path)], capture_output=True, text=True, check=True
            )
            peaks[name] = (
                json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"],
                corpus.meta["splits"]["train"]["tokens"],
            )
    ratio = peaks["10x"][0] / peaks["1x"][0]
    return [
        {
            "benchmark": "memory",
            "train_tokens_1x": peaks["1x"][1],
            "train_tokens_10x": peaks["10x"][1],
            "peak_rss_mb_1x": peaks["1x"][0],
            "peak_rss_mb_10x": peaks["10x"][0],
            "ratio": ratio,
            "target": 1.2,
            "pass": ratio <= 1.2,
        }
    ]
