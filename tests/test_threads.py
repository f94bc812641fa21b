"""Training on a shared CPU uses the cores other processes leave free, and says so."""

from __future__ import annotations

import io
import sys

import pytest
import torch
from conftest import TINY

from rnngen.training import threads


@pytest.fixture
def torch_threads():
    """Torch's thread count as the test sets it, given back afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "cores,available,busy,inside",
    [
        (2, 2, None, 2),  # nothing measured: nothing changed
        (2, 2, 0.3, 2),  # a core taken for a moment does not count
        (2, 2, 0.8, 1),
        (2, 2, 2.0, 1),  # never fewer than one
        (8, 4, 3.0, 4),  # torch's own count stays the ceiling
        (8, 6, 3.0, 5),
    ],
)
def test_training_uses_the_cores_no_one_else_keeps_busy_and_restores_the_count(
    cores, available, busy, inside, torch_threads, monkeypatch
):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    torch_threads(available)
    with threads.on_free_cores() as note:
        assert torch.get_num_threads() == inside
        if inside == available:
            assert note is None
        else:
            assert f"keep {available - inside} of this machine's cores busy: training on {inside} thread" in note
    assert torch.get_num_threads() == available


@pytest.mark.real_cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_busy_cores_reads_the_machines_load():
    busy = threads.busy_cores(0.05)
    assert busy is not None and 0.0 <= busy <= (threads.os.cpu_count() or 1)


def test_the_count_is_restored_when_training_fails(torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    torch_threads(2)
    with pytest.raises(KeyboardInterrupt), threads.on_free_cores():
        assert torch.get_num_threads() == 1
        raise KeyboardInterrupt
    assert torch.get_num_threads() == 2


@pytest.mark.real_cores  # the real reading, of a made-up /proc/stat
def test_busy_cores_are_the_share_of_ticks_that_were_not_idle(monkeypatch):
    # Two readings of /proc/stat's first line (user nice system idle iowait ...): 200 ticks in between, of
    # which 50 idle and 10 waiting for I/O, so 70% of the 4 cores were busy.
    readings = iter(["cpu  100 0 100 700 100 0 0\n", "cpu  200 10 130 750 110 0 0\n"])
    monkeypatch.setattr(threads, "open", lambda path: io.StringIO(next(readings)), raising=False)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.busy_cores() == pytest.approx(4 * 0.7)
    monkeypatch.setattr(threads, "open", lambda path: io.StringIO(""), raising=False)
    assert threads.busy_cores() is None  # unreadable: nothing is changed


def test_an_explicit_thread_count_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    with threads.on_free_cores() as note:
        assert note is None


def test_the_display_says_when_training_had_to_leave_cores(run_cli, text_file, torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    torch_threads(2)
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli("train", "--corpus", "notes", *TINY, "--name", "shared")
    assert result.exit_code == 0, result.output
    assert "training on 1 thread instead of 2" in " ".join(result.output.split())
