"""Training on a shared CPU uses the cores other processes leave free, and says so."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import TINY

from rnngen.training import threads


def test_the_free_cores_are_the_ones_no_one_else_keeps_busy(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.free_threads(2, None) == 2  # nothing measured: nothing changed
    assert threads.free_threads(2, 0.3) == 2  # a core taken for a moment does not count
    assert threads.free_threads(2, 0.8) == 1
    assert threads.free_threads(2, 2.0) == 1  # never fewer than one
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    assert threads.free_threads(4, 3.0) == 4  # torch's own count stays the ceiling


@pytest.mark.real_cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_busy_cores_reads_the_machines_load():
    busy = threads.busy_cores(0.05)
    assert busy is not None and 0.0 <= busy <= (threads.os.cpu_count() or 1)


def test_training_beside_a_busy_core_uses_the_free_ones_and_restores_the_count(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    with threads.on_free_cores() as note:
        assert seen == [1] and "keep 1 of this machine's cores busy: training on 1 thread instead of 2" in note
    assert seen == [1, 2]  # back to torch's own count after the run


def test_an_explicit_thread_count_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    with threads.on_free_cores() as note:
        assert note is None


def test_the_display_says_when_training_had_to_leave_cores(run_cli, text_file, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli("train", "--corpus", "notes", *TINY, "--name", "shared")
    assert result.exit_code == 0, result.output
    assert "training on 1 thread instead of 2" in " ".join(result.output.split())
