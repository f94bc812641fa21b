"""Vanishing gradients, made visible: the measurements behave as the lecture derives."""

from __future__ import annotations

import torch

from rnngen.config import ModelConfig
from rnngen.gradients import profile
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
    png = tmp_path / "gradients.png"
    result = run_cli("gradients", "--corpus", "notes", "--model", "rnn,lstm,gru", "--hidden", "16",
                     "--length", "30", "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert all(kind in result.output for kind in ("rnn", "lstm", "gru")) and png.stat().st_size > 10_000
    result = run_cli("gradients", "--checkpoint", trained, "--length", "20")
    assert result.exit_code == 0 and "notes-run (lstm)" in result.output
    result = run_cli("gradients", "--corpus", "notes", "--model", "rnn,transformer")
    assert result.exit_code == 2 and "transformer" in result.output
    curves = tmp_path / "curves.png"
    result = run_cli("plot", trained, "--out", str(curves))
    assert result.exit_code == 0 and curves.stat().st_size > 10_000
