"""Time per training step against sequence length: the step loop, the fused layer, the scan and attention.

What `benchmarks/scan_speed.py` measures (forward, backward and an AdamW step of a one-layer language model over a
vocabulary of 256), shared here so the lab and the benchmark time the same thing. On a CPU the step loop pays
Python's cost per step; on a GPU the fused layer still steps through time, while the scan and attention work on
all steps at once: the lecture's limit (4).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from rnngen.config import ModelConfig
from rnngen.lab.limits import MAX_SPEED_LENGTH
from rnngen.lab.models import ATTENTION, LabModel, Size
from rnngen.models import build

VOCAB = 256
# name -> (kind, impl, sequential): how each case computes its steps
CASES = {
    "gru-scratch": ("gru", "scratch", False),  # the lecture's cell in a Python loop
    "mingru-loop": ("mingru", "fused", True),  # minGRU's recurrence, stepped
    "gru-fused": ("gru", "fused", False),  # PyTorch's fused layer (oneDNN, cuDNN)
    "mingru-scan": ("mingru", "fused", False),  # minGRU's parallel scan
    ATTENTION: (ATTENTION, "", False),  # causal attention over all steps at once
}


def case_model(name: str, width: int) -> nn.Module:
    """The one-layer language model of case `name`, `width` wide: ids [B, T] -> logits [B, T, 256]."""
    kind, impl, sequential = CASES[name]
    if kind == ATTENTION:
        return LabModel(ATTENTION, VOCAB, VOCAB, Size(width=width, hidden=width), tokens=True, max_len=MAX_SPEED_LENGTH)
    model = build(ModelConfig(kind=kind, impl=impl, vocab_size=VOCAB, embed=width, hidden=width, layers=1))
    if kind == "mingru":
        model.rnn.sequential = sequential
    return model


def step_seconds(name: str, length: int, steps: int = 3, batch: int = 8, width: int = 256, device: str = "cpu"):
    """Seconds per training step of case `name` on sequences of `length` (after one warm-up step)."""
    torch.manual_seed(0)
    model = case_model(name, width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, VOCAB, (batch, length + 1), device=device)

    def step() -> None:
        logits = model(ids[:, :-1])
        logits = logits[0] if isinstance(logits, tuple) else logits
        F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}.get(device, lambda: None)
    step()
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - started) / steps
