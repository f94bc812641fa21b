"""The lab: short, seeded, synthetic experiments that probe the limits of recurrence (`rnngen lab`).

from rnngen.lab import run_lab
[adding] = run_lab(["adding"], ["rnn", "gru"], lengths=[100], quick=True)
for cell in adding.cells:
    print(cell.model, cell.length, cell.score, adding.verdict(cell))
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> its module, loaded at first use: `rnngen lab --help` reads `rnngen.lab.limits` without importing torch.
EXPORTS = {
    "run_lab": "experiments",
    "train_run": "runner",
    "RunConfig": "runner",
    "RunResult": "runner",
    "Adding": "tasks",
    "Copy": "tasks",
    "Recall": "tasks",
}
__all__ = list(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"rnngen.lab.{EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rnngen.lab' has no attribute {name!r}")
