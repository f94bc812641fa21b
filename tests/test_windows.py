"""Completion on a system without `fcntl` (Windows): complete, chat, evaluate and `rnngen.load` import and run,
and never ask `os.kill` whether a process lives (on Windows it ends the process); training says in one line that it
needs a POSIX system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Run before anything of rnngen is imported: `import fcntl` fails as on Windows, and os.kill must not be called.
SHIM = """
import os, sys
sys.modules["fcntl"] = None
def _no_kill(*args):
    raise AssertionError("os.kill called")
os.kill = _no_kill
"""


def without_fcntl(tmp_path: Path, code: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHIM + code, *args],
        capture_output=True,
        text=True,
        input=input,
        cwd=tmp_path,
        env={
            **os.environ,
            "RNNGEN_CHECKPOINTS": str(tmp_path / "checkpoints"),
            "RNNGEN_CORPORA": str(tmp_path / "corpora"),
        },
    )


CLI = "from rnngen.cli.main import cli; cli(sys.argv[1:], prog_name='rnngen')"


@pytest.mark.parametrize(
    "args,stdin",
    [
        (("complete", "The model", "--max-tokens", "5", "--seed", "1", "--plain"), None),
        (("complete", "-", "--max-tokens", "5", "--beam", "2"), "the\n"),
        (("chat", "--max-tokens", "5"), "the model\n/temperature 0\nthe\n"),
        (("evaluate", "--max-tokens", "500", "--json"), None),
    ],
)
def test_completion_and_evaluation_run_without_fcntl(trained, tmp_path, args, stdin):
    result = without_fcntl(tmp_path, CLI, *args, input=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout and "Traceback" not in result.stderr


def test_rnngen_load_runs_without_fcntl(trained, tmp_path):
    code = "import rnngen; print(len(rnngen.load(sys.argv[1]).complete('The', max_tokens=5, seed=1)) > 0)"
    result = without_fcntl(tmp_path, code, trained)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr


def test_training_without_fcntl_says_it_needs_a_posix_system_in_one_line(trained, tmp_path):
    result = without_fcntl(tmp_path, CLI, "train", "--corpus", "notes", "--steps", "5")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "lock their folders with flock" in lines[0] and "WSL" in lines[0]
