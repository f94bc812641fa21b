"""The GPU path: cuDNN layers under bf16 autocast, `--compile`, NCCL, the `gpu` preset, the scan on CUDA.

Skipped where PyTorch sees no CUDA GPU (CI has none). The rest of the suite asserts CPU behaviour and
sees no GPU even where there is one (conftest.py), so these are the tests of the GPU path.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from rnngen.config import PRESETS, ModelConfig, TrainConfig
from rnngen.models import build, checkpoint, precision
from rnngen.models.minimal import MinRecurrent
from rnngen.store.runs import LAST, RunFolder
from rnngen.training import distributed
from rnngen.training.events import Logged
from rnngen.training.signals import Interrupted
from rnngen.training.trainer import Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def train_losses(run: RunFolder) -> list[float]:
    return [row["loss"] for row in run.metrics() if row["event"] == "train"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bf16_cuda_training_learns_and_gives_the_same_logits_on_the_cpu(char_corpus, tmp_path, kind):
    model_cfg = ModelConfig(kind=kind, vocab_size=char_corpus.vocab_size, embed=64, hidden=128, layers=2)
    cfg = TrainConfig(
        batch_size=16,
        seq_len=64,
        lr=1e-2,
        warmup=5,
        steps=150,
        time_budget=None,
        eval_every=75,
        eval_tokens=5000,
        log_every=1,
        device="cuda",
    )
    run = RunFolder(tmp_path / kind)
    trainer = Trainer(char_corpus, model_cfg, cfg, run)
    assert trainer.device.type == "cuda" and next(trainer.model.parameters()).is_cuda
    trainer.fit()
    curve = train_losses(run)
    assert sum(curve[-10:]) / 10 < 0.75 * sum(curve[:10]) / 10
    # Saved from the GPU, loaded on the CPU: the same weights (bf16 was the arithmetic, not the storage).
    model, tok, ckpt = checkpoint.load_model(run, run.file(LAST))
    assert not next(model.parameters()).is_cuda and ckpt.step == 150
    ids = torch.tensor([tok.encode("the model reads a token")])
    with torch.no_grad():
        gpu_logits = trainer.kept.eval()(ids.cuda())[0].float().cpu()  # the saved weights: their average
        torch.testing.assert_close(model(ids)[0], gpu_logits, rtol=1e-3, atol=1e-3)


def test_the_autocast_on_cuda_is_bf16_and_the_weights_stay_fp32():
    model = build(ModelConfig(kind="lstm", vocab_size=50, embed=16, hidden=32, layers=1)).cuda()
    with precision.autocast(torch.device("cuda"), "bf16"):
        logits, _ = model(torch.randint(0, 50, (2, 8), device="cuda"))
    assert logits.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_cuda_runs_resume_from_their_checkpoint(char_corpus, tmp_path):
    model_cfg = ModelConfig(kind="gru", vocab_size=char_corpus.vocab_size, embed=32, hidden=64, layers=1)
    cfg = TrainConfig(
        batch_size=8,
        seq_len=32,
        lr=1e-2,
        warmup=2,
        steps=40,
        time_budget=None,
        eval_every=20,
        eval_tokens=2000,
        log_every=1,
        device="cuda",
    )
    unbroken = RunFolder(tmp_path / "unbroken")
    Trainer(char_corpus, model_cfg, cfg, unbroken).fit()
    first = RunFolder(tmp_path / "resumed")
    stopped = Trainer(char_corpus, model_cfg, cfg, first)

    def press_ctrl_c(event):
        if isinstance(event, Logged) and event.step == 27:
            stopped.stop.signal = 2

    stopped.on_event = press_ctrl_c
    with pytest.raises(Interrupted):
        stopped.fit()
    Trainer(char_corpus, model_cfg, cfg, first, resume_from=checkpoint.load(first.file(LAST))).fit()
    a, b = train_losses(unbroken), train_losses(first)
    assert len(a) == len(b) == 40
    # cuDNN's kernels may add in another order from run to run: close, not bit-for-bit as on the CPU.
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.05


def test_compiled_training_on_cuda_matches_eager(char_corpus, tmp_path):
    model_cfg = ModelConfig(kind="lstm", vocab_size=char_corpus.vocab_size, embed=32, hidden=64, layers=1)
    curves = []
    for compiled in (False, True):
        cfg = TrainConfig(
            batch_size=8,
            seq_len=32,
            lr=1e-2,
            warmup=2,
            steps=20,
            time_budget=None,
            eval_every=20,
            eval_tokens=2000,
            log_every=1,
            device="cuda",
            compile=compiled,
        )
        run = RunFolder(tmp_path / f"compiled-{compiled}")
        Trainer(char_corpus, model_cfg, cfg, run).fit()
        curves.append(train_losses(run))
    assert len(curves[0]) == len(curves[1]) == 20
    assert max(abs(x - y) for x, y in zip(*curves)) < 0.05


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_the_scan_on_cuda_equals_the_step_by_step_recurrence(kind):
    torch.manual_seed(0)
    stack = MinRecurrent(kind, 16, 24, num_layers=2).cuda()
    x = torch.randn(2, 2048, 16, device="cuda")
    outputs = []
    for sequential in (False, True):
        stack.sequential = sequential
        outputs.append(stack(x)[0])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)


def test_the_gpu_preset_is_the_auto_choice_and_trains(run_cli, text_file, tmp_path):
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli(
        "train",
        "--corpus",
        "notes",
        "--steps",
        "4",
        "--eval-every",
        "4",
        "--eval-tokens",
        "4000",
        "--batch-size",
        "8",
        "--plain",
        "--name",
        "gpu-run",
    )
    assert result.exit_code == 0, result.output
    saved = checkpoint.load(tmp_path / "checkpoints" / "gpu-run" / "last.safetensors")
    expected = PRESETS["gpu"].model
    assert (saved.model.kind, saved.model.hidden, saved.model.layers) == (
        expected.kind,
        expected.hidden,
        expected.layers,
    )
    assert saved.step == 4


def test_nccl_reduces_what_the_trainer_shares(tmp_path):
    dist.init_process_group(
        "nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1, device_id=torch.device("cuda", 0)
    )
    try:
        device = torch.device("cuda")
        assert distributed.total(2.5, device) == 2.5
        assert distributed.any_rank(True, device) and not distributed.any_rank(False, device)
        torch.testing.assert_close(distributed.mean(torch.ones(3, device=device)), torch.ones(3, device=device))
        assert distributed.broadcast("run-name") == "run-name"
    finally:
        dist.destroy_process_group()
