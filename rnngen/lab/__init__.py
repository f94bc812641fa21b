"""The lab: short, seeded, synthetic experiments that probe the limits of recurrence (`rnngen lab`).

from rnngen.lab import run_lab
[adding] = run_lab(["adding"], ["rnn", "gru"], lengths=[100], quick=True)
for cell in adding.cells:
    print(cell.model, cell.length, cell.score, adding.verdict(cell))
"""

from rnngen.lab.experiments import run_lab
from rnngen.lab.runner import RunConfig, RunResult, train_run
from rnngen.lab.tasks import Adding, Copy, Recall

__all__ = ["run_lab", "train_run", "RunConfig", "RunResult", "Adding", "Copy", "Recall"]
