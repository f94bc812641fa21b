"""Cold start: a whole `rnngen complete` process against `python -c "import torch"`, same run.

Target: complete with the default CPU model and 200 tokens takes at most 1.5 s more than importing
torch, and `rnngen --help` / `rnngen runs` stay under 0.5 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rnngen.config import PRESETS, ModelConfig, TrainConfig
from rnngen.training.runs import RunFolder
from rnngen.training.trainer import Trainer


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 5
    with tempfile.TemporaryDirectory() as folder:
        model_cfg = ModelConfig(**{**PRESETS["cpu"]["model"], "vocab_size": corpus.vocab_size})
        cfg = TrainConfig(steps=1, time_budget=None, eval_tokens=1000, warmup=1)
        Trainer(corpus, model_cfg, cfg, RunFolder(Path(folder) / "run")).fit()
        rnngen = [sys.executable, "-m", "rnngen", "--checkpoints-dir", folder]
        torch_import = wall([sys.executable, "-c", "import torch"], repeats)
        complete = wall([*rnngen, "complete", "Studying Deep Learning is really", "--max-tokens", "200",
                         "--plain", "--seed", "0"], repeats)
        help_ = wall([*rnngen, "--help"], repeats)
        runs = wall([*rnngen, "runs"], repeats)
    return [{"benchmark": "cold_start", "import_torch_s": torch_import, "complete_200_s": complete,
             "overhead_s": complete - torch_import, "target_overhead_s": 1.5, "pass": complete - torch_import <= 1.5,
             "help_s": help_, "runs_s": runs, "help_and_runs_pass": max(help_, runs) < 0.5}]
