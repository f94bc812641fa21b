"""A real `rnngen train` process stopped by Ctrl-C or killed outright loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnngen.models import checkpoint

STEPS = "1500"


def train_cmd(tmp_path: Path, run: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnngen",
        "--corpora-dir",
        str(tmp_path / "corpora"),
        "--checkpoints-dir",
        str(tmp_path / "checkpoints"),
        "train",
        "--corpus",
        "notes",
        "--preset",
        "tiny",
        "--log-every",
        "1",
        "--eval-every",
        "100",
        "--eval-tokens",
        "2000",
        "--plain",
        "--name",
        run,
        *extra,
    ]


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


def test_ctrl_c_saves_and_resume_matches_the_unbroken_run(char_corpus, tmp_path, monkeypatch):
    # One thread count for all three runs: a busy machine would otherwise give them different ones (and so
    # different sums), since a process trains on the cores it finds free.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
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


def test_a_closed_terminal_saves_the_run(char_corpus, tmp_path):
    process = subprocess.Popen(train_cmd(tmp_path, "hung-up", "--steps", "100000"), stderr=subprocess.PIPE, text=True)
    wait_for_steps(tmp_path / "checkpoints" / "hung-up" / "metrics.jsonl", 5, process)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 129, stderr
    assert "stopped by SIGHUP" in stderr and "rnngen train --resume" in stderr
    assert checkpoint.load(tmp_path / "checkpoints" / "hung-up" / "last.safetensors").step >= 5


def test_kill_9_leaves_the_newest_checkpoint_loadable(char_corpus, tmp_path):
    cmd = train_cmd(tmp_path, "killed", "--steps", STEPS)
    cmd[cmd.index("--eval-every") + 1] = "7"  # checkpoints all the time: the kill lands near or in a write
    process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    wait_for_steps(tmp_path / "checkpoints" / "killed" / "metrics.jsonl", 120, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for name in ("best.safetensors", "last.safetensors"):
        assert checkpoint.load(tmp_path / "checkpoints" / "killed" / name).step >= 112


SIGNALLED = """
import os, signal, sys
from rnngen.training.signals import stop_on_signals
with stop_on_signals() as flag:
    for name in sys.argv[1:]:
        os.kill(os.getpid(), getattr(signal, name))  # handled before os.kill returns
    print("saving after", signal.Signals(flag.signal).name)
"""


@pytest.mark.parametrize(
    ("signals", "code", "saves"),
    [
        (["SIGTERM", "SIGTERM"], 0, "SIGTERM"),  # a cluster signals every task, and torchrun passes its own on
        (["SIGTERM", "SIGINT"], 130, None),  # a person's Ctrl-C: exits at once
        (["SIGINT", "SIGINT"], 130, None),
        (["SIGHUP", "SIGHUP"], 0, "SIGHUP"),  # a closed terminal saves too
    ],
)
def test_only_a_repeated_sigint_exits_without_saving(signals, code, saves):
    done = subprocess.run([sys.executable, "-c", SIGNALLED, *signals], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert done.stdout.strip() == (f"saving after {saves}" if saves else "")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGINT]],  # Ctrl-C twice: torchrun passes a SIGTERM on
)
def test_a_signal_to_the_nproc_wrapper_saves_and_leaves_no_workers(char_corpus, tmp_path, signals):
    cmd = train_cmd(
        tmp_path,
        "wrapped",
        "--steps",
        "100000",
        "--eval-every",
        "100000",
        "--log-every",
        "5",
        "--batch-size",
        "4",
        "--nproc",
        "2",
        "--device",
        "cpu",
    )
    process = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        wait_for_steps(tmp_path / "checkpoints" / "wrapped" / "metrics.jsonl", 4, process)
        workers = [worker for launcher in children(process.pid) for worker in children(launcher)]
        assert len(workers) == 2
        for sig in signals:
            os.kill(process.pid, sig)  # the wrapper only, as `kill PID` or a scheduler does
            time.sleep(0.1)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 128 + signals[0], stderr[-3000:]
        assert f"stopped by {signals[0].name} at step" in stderr
        assert checkpoint.load(tmp_path / "checkpoints" / "wrapped" / "last.safetensors").step >= 20
        assert not [worker for worker in workers if alive(worker)]
    finally:
        for pid in [process.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
