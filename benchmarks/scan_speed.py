"""Parallel over time: minGRU (scan) against minGRU (loop), the fused GRU and the scratch GRU.

Training tokens/s (forward + backward + AdamW step) at sequence lengths 128, 512 and 2048, same
width and batch, and the peak memory of each (resident memory on the CPU, allocated memory on a
GPU), measured in a fresh process per case so that one case's memory does not hide another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

CASE = r"""
import json, resource, sys, torch
from rnngen.lab.speed import step_seconds
name, length, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
device = "cuda" if torch.cuda.is_available() else "cpu"
seconds = step_seconds(name, length, steps, batch=8, width=256, device=device)
memory = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
          else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"device": device, "tokens_per_s": 8 * length / seconds, "peak_memory_mb": memory}))
"""


def run(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for length in (128, 512) if quick else (128, 512, 2048):
        for name in ("mingru-scan", "mingru-loop", "gru-fused", "gru-scratch"):
            steps = 1 if name in ("gru-scratch", "mingru-loop") and length > 512 else 3
            done = subprocess.run(
                [sys.executable, "-c", CASE, name, str(length), str(steps)], capture_output=True, text=True, check=True
            )
            rows.append(
                {
                    "benchmark": "scan",
                    "model": name,
                    "seq_len": length,
                    "batch": 8,
                    "width": 256,
                    **json.loads(done.stdout.strip().splitlines()[-1]),
                }
            )
    return rows
