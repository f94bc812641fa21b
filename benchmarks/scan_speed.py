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
import json, resource, sys, time, torch
import torch.nn.functional as F
from rnngen.config import ModelConfig
from rnngen.models import build
name, length, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kind, impl, sequential = {"mingru-scan": ("mingru", "fused", False), "mingru-loop": ("mingru", "fused", True),
                          "gru-fused": ("gru", "fused", False), "gru-scratch": ("gru", "scratch", False)}[name]
torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = build(ModelConfig(kind=kind, impl=impl, vocab_size=256, embed=256, hidden=256, layers=1)).to(device)
if kind == "mingru":
    model.rnn.sequential = sequential
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
batch = torch.randint(0, 256, (8, length + 1), device=device)
def step():
    logits, _ = model(batch[:, :-1])
    F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1)).backward()
    opt.step(); opt.zero_grad(set_to_none=True)
step()
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
sync()
started = time.perf_counter()
for _ in range(steps):
    step()
sync()
seconds = (time.perf_counter() - started) / steps
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
