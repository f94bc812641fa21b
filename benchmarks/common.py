"""What every benchmark shares: the machine description, timing, and a corpus to measure on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# Tiny shakespeare (public domain), as char-rnn distributes it; the benchmarks that need it take its path.
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def machine() -> dict[str, Any]:
    """The machine and versions a figure was measured on."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    try:
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def prepared(root: Path, dataset: str, kind: str, vocab: int | None, name: str):
    """A corpus prepared once under `root` and reused by later benchmark runs."""
    import rnngen

    return rnngen.prepare(dataset, tokenizer=kind, vocab_size=vocab, name=name, corpora=root)
