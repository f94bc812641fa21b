"""The README's "lecture in code" table points at the lines that compute each equation."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# (reference as written in the README, text its first line must hold)
REFERENCES = [
    ("rnngen/models/scratch.py:24", "torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)"),
    ("rnngen/models/recurrent.py:78", "def logits"),
    ("rnngen/models/scratch.py:31-33", "i_t = torch.sigmoid"),
    ("rnngen/models/scratch.py:34", "c_cand = torch.tanh"),
    ("rnngen/models/scratch.py:37", "c_t = f_t * c + i_t * c_cand"),
    ("rnngen/models/scratch.py:38", "h_t = o_t * torch.tanh(c_t)"),
    ("rnngen/models/scratch.py:51-54", "r_t = torch.sigmoid"),
    ("rnngen/training/evaluate.py:21", "F.cross_entropy"),
    ("rnngen/training/trainer.py:107", "next_token_loss"),
    ("rnngen/training/trainer.py:108", "loss.backward()"),
    ("rnngen/training/trainer.py:109", "clip_grad_norm_"),
    ("rnngen/training/trainer.py:112", "detach_state"),
    ("rnngen/analysis/gradients.py:66", "F.cross_entropy(model.logits(last), target).backward()"),
    ("rnngen/analysis/gradients.py:73", "last.backward(probe)"),
    ("rnngen/analysis/gradients.py:79", "matrix_norm"),
    ("rnngen/analysis/gradients.py:81", "1 - hidden.square()"),
]


@pytest.mark.parametrize("reference,text", REFERENCES)
def test_readme_line_references_hold_their_equation(reference, text):
    readme = (ROOT / "README.md").read_text()
    path, lines = reference.rsplit(":", 1)
    line = lines.split("-")[0]
    short = f"`:{line}`"
    assert f"`{reference}" in readme or (path in readme and short in readme), f"README no longer cites {reference}"
    assert text in (ROOT / path).read_text().splitlines()[int(line) - 1]
