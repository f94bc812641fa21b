"""Vanishing gradients, made visible: the measurements behave as the lecture derives."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time

import pytest
import torch
import torch.nn.functional as F

from rnngen.analysis.gradients import profile
from rnngen.config import ModelConfig
from rnngen.interrupts import Terminated, sigterm_raises
from rnngen.models import build


def window(length: int = 40) -> torch.Tensor:
    return torch.randint(0, 30, (length + 1,), generator=torch.Generator().manual_seed(0))


def test_vanilla_rnn_with_small_recurrent_weights_decays_geometrically():
    torch.manual_seed(0)
    model = build(ModelConfig(kind="rnn", vocab_size=30, embed=16, hidden=16, layers=1))
    with torch.no_grad():
        w = model.rnn.weight_hh_l0
        w.mul_(0.5 / torch.linalg.matrix_norm(w, ord=2))  # ||W_h||_2 = 0.5
    prof = profile(model, window(), "rnn")
    # ||dh_t/dh_{t-1}|| <= ||W_h|| * max(1 - tanh^2) <= 0.5 at every step back.
    ratios = [prof.loss_grad[d + 1] / prof.loss_grad[d] for d in range(1, 39) if prof.loss_grad[d] > 1e-30]
    assert max(ratios) <= 0.5 + 1e-6
    assert prof.loss_grad[30] < 1e-8 * prof.loss_grad[1]
    assert abs(prof.spectral_norm - 0.5) < 1e-5 and 0 < prof.tanh_slope <= 1
    assert prof.vanish_distance is not None and prof.vanish_distance < 15


def test_lstm_with_open_forget_gates_keeps_the_gradient():
    torch.manual_seed(0)
    model = build(ModelConfig(kind="lstm", vocab_size=30, embed=16, hidden=16, layers=1))
    with torch.no_grad():
        model.rnn.bias_ih_l0[16:32].fill_(100.0)  # f_t = sigmoid(100) = 1: the cell never forgets
    prof = profile(model, window(), "lstm")
    assert prof.loss_grad[39] > 1e-2 * prof.loss_grad[1]
    assert prof.vanish_distance is None


def test_gradients_and_plot_commands(run_cli, trained, tmp_path):
    result = run_cli("gradients", "--corpus", "notes", "--model", "rnn,lstm,gru", "--hidden", "16", "--length", "30")
    assert result.exit_code == 0, result.output
    assert all(kind in result.output for kind in ("rnn", "lstm", "gru")) and "< 1e-3 at" in result.output
    result = run_cli("gradients", "--checkpoint", trained, "--length", "20")
    assert result.exit_code == 0 and "notes-run (lstm)" in result.output
    result = run_cli("gradients", "--corpus", "notes", "--model", "rnn,transformer")
    assert result.exit_code == 2 and "transformer" in result.output


def test_pictures_are_written_with_matplotlib_and_refused_clearly_without(run_cli, trained, tmp_path):
    png, curves = tmp_path / "gradients.png", tmp_path / "curves.png"
    gradients = run_cli(
        "gradients", "--corpus", "notes", "--model", "rnn,lstm", "--hidden", "16", "--length", "20", "--plot", str(png)
    )
    plot = run_cli("plot", trained, "--out", str(curves))
    if importlib.util.find_spec("matplotlib") is None:  # the optional extra is not installed
        for result in (gradients, plot):
            assert result.exit_code == 1 and "pip install 'rnngen[plot]'" in result.output
            assert "d=0" not in result.output  # refused before any work
    else:
        assert gradients.exit_code == 0 and png.stat().st_size > 10_000
        assert plot.exit_code == 0 and curves.stat().st_size > 10_000


def test_a_picture_format_matplotlib_cannot_write_is_refused_before_any_work(run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    for command in (
        ("plot", "any-run", "--out", str(tmp_path / "curves.txt")),
        ("runs", "--compare", "any-run", "--out", str(tmp_path / "compare.txt")),
        ("gradients", "--corpus", "nowhere", "--plot", str(tmp_path / "gradients.txt")),
        ("lab", "adding", "--quick", "--plot", str(tmp_path / "lab")),
    ):
        result = run_cli(*command)
        option, path = command[-2:]
        assert result.exit_code == 1 and result.output.startswith(f"error: {option} {path}: end the name"), command
        assert ".png" in result.output and len(result.output.splitlines()) == 1, result.output
    assert not any(tmp_path.iterdir())  # nothing prepared, trained or written


def test_a_window_longer_than_the_labs_is_refused_before_any_work(run_cli, tmp_path):
    result = run_cli("gradients", "--corpus", "nowhere", "--length", "100000")
    assert result.exit_code == 2 and "100000 is not in the range 2<=x<=2000" in result.output
    assert not any(tmp_path.iterdir())  # no corpus prepared, no model built


def test_sigterm_stops_a_profile_within_a_step_of_its_backward_pass():
    torch.manual_seed(0)
    model = build(ModelConfig(kind="lstm", vocab_size=30, embed=32, hidden=32, layers=1))
    ids, sent = window(2000), []

    def loss_then_sigterm(logits: torch.Tensor) -> torch.Tensor:
        # The signal lands in the backward pass that follows: 2,000 steps back, one call into torch.
        def send() -> None:
            time.sleep(0.1)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=send).start()
        return F.cross_entropy(logits, ids[None, -1])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a steady pace: the whole pass takes about a second
    try:
        with pytest.raises(Terminated), sigterm_raises():
            profile(model, ids, "lstm", loss=loss_then_sigterm)
            time.sleep(5)  # the profile ended first: the signal, still due, is raised here
    finally:
        torch.set_num_threads(threads)
    assert time.monotonic() - sent[0] < 0.3
