"""Training beside a busy core: tokens/s of `rnngen.train` while another process keeps one core busy, against
the same run on the otherwise idle machine, measured back to back in one run.

The other process is a one-line Python busy loop: a browser tab, a compile or another user's job on a shared
server take a core the same way. The target is at least 40% of the idle speed with one core taken.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from typing import Any

from rnngen.pipeline import train

BUSY_LOOP = "while True: pass"


def tokens_per_s(corpus, steps: int) -> float:
    """The training speed of the `cpu` preset over `steps` steps, without evaluations or samples."""
    with tempfile.TemporaryDirectory() as folder:
        summary = train(
            corpus,
            "cpu",
            checkpoints=folder,
            name="busy",
            steps=steps,
            eval_every=10**9,
            eval_tokens=1000,
            samples=False,
            warmup=1,
        )
    return summary.tokens_per_s


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    steps = 15 if quick else 60
    idle = tokens_per_s(corpus, steps)
    loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(1.0)  # the loop holds its core before training measures the free ones
        busy = tokens_per_s(corpus, steps)
    finally:
        loop.kill()
        loop.wait()
    ratio = busy / idle
    return [
        {
            "benchmark": "busy_cpu",
            "steps": steps,
            "idle_tokens_per_s": idle,
            "busy_tokens_per_s": busy,
            "ratio": ratio,
            "target": 0.4,
            "pass": ratio >= 0.4,
        }
    ]
