"""A real `rnngen train` process stopped by Ctrl-C or killed outright loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rnngen.training import checkpoint

STEPS = "1500"


def train_cmd(tmp_path: Path, run: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnngen", "--corpora-dir", str(tmp_path / "corpora"), "--checkpoints-dir",
            str(tmp_path / "checkpoints"), "train", "--corpus", "notes", "--preset", "tiny", "--log-every", "1",
            "--eval-every", "100", "--eval-tokens", "2000", "--plain", "--name", run, *extra]


def wait_for_steps(metrics: Path, steps: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text().count('"train"') >= steps:
            return
        time.sleep(0.05)
    raise AssertionError(f"training did not reach step {steps}")


def losses(tmp_path: Path, run: str) -> dict[int, float]:
    rows = [json.loads(line) for line in (tmp_path / "checkpoints" / run / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if row["event"] == "train"}


def test_ctrl_c_saves_and_resume_matches_the_unbroken_run(char_corpus, tmp_path):
    process = subprocess.Popen(train_cmd(tmp_path, "stopped", "--steps", STEPS), stderr=subprocess.PIPE, text=True)
    wait_for_steps(tmp_path / "checkpoints" / "stopped" / "metrics.jsonl", 250, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr and "rnngen train --resume" in stderr
    stopped_at = checkpoint.load(tmp_path / "checkpoints" / "stopped" / "last.safetensors").step
    assert 250 <= stopped_at < int(STEPS)

    resumed = subprocess.run(train_cmd(tmp_path, "ignored", "--resume", "stopped"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    unbroken = subprocess.run(train_cmd(tmp_path, "unbroken", "--steps", STEPS), capture_output=True, text=True)
    assert unbroken.returncode == 0, unbroken.stderr
    # The interrupted step is logged once and every later loss is bit-for-bit the unbroken one.
    assert losses(tmp_path, "stopped") == losses(tmp_path, "unbroken")


def test_kill_9_leaves_the_newest_checkpoint_loadable(char_corpus, tmp_path):
    cmd = train_cmd(tmp_path, "killed", "--steps", STEPS)
    cmd[cmd.index("--eval-every") + 1] = "7"  # checkpoints all the time: the kill lands near or in a write
    process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    wait_for_steps(tmp_path / "checkpoints" / "killed" / "metrics.jsonl", 120, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for name in ("best.safetensors", "last.safetensors"):
        assert checkpoint.load(tmp_path / "checkpoints" / "killed" / name).step >= 112
