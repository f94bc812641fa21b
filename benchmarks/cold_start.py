"""Cold start: whole `rnngen complete` and `rnngen chat` processes, against bare imports in the same run.

Targets: `complete` with the `cpu` preset's model and 200 tokens takes at most 0.6 s, and at most
0.3 s more than `python -c "import numpy, sentencepiece"` (what CPU completion cannot do without);
`chat` shows its prompt within 0.5 s; `rnngen --help` / `rnngen runs` stay under 0.5 s.
`python -c "import torch"` is measured alongside: what every completion paid before it ran on NumPy.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from rnngen.pipeline import train


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def until_prompt(cmd: list[str], repeats: int) -> float:
    """Seconds from starting `cmd` until its output shows the chat's prompt "> "."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        seen = b""
        while b"> " not in seen:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{' '.join(cmd)} ended before showing its prompt: {seen!r}")
            seen += chunk
        times.append(time.perf_counter() - started)
        process.communicate(b"")  # end of input: the session ends
    return statistics.median(times)


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as folder:
        train(corpus, "cpu", checkpoints=folder, name="run", steps=1, eval_tokens=1000, warmup=1)
        rnngen = [sys.executable, "-m", "rnngen", "--checkpoints-dir", folder]
        bare = wall([sys.executable, "-c", "import numpy, sentencepiece"], repeats)
        torch_import = wall([sys.executable, "-c", "import torch"], repeats)
        complete = wall(
            [*rnngen, "complete", "Studying Deep Learning is really", "--max-tokens", "200", "--plain", "--seed", "0"],
            repeats,
        )
        chat = until_prompt([*rnngen, "chat"], repeats)
        help_ = wall([*rnngen, "--help"], repeats)
        runs = wall([*rnngen, "runs"], repeats)
    return [
        {
            "benchmark": "cold_start",
            "import_numpy_sentencepiece_s": bare,
            "import_torch_s": torch_import,
            "complete_200_s": complete,
            "overhead_s": complete - bare,
            "target_s": 0.6,
            "target_overhead_s": 0.3,
            "pass": complete <= 0.6 and complete - bare <= 0.3,
            "chat_prompt_s": chat,
            "chat_pass": chat <= 0.5,
            "help_s": help_,
            "runs_s": runs,
            "help_and_runs_pass": max(help_, runs) < 0.5,
        }
    ]
