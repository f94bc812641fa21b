"""Correct on the devices a user has, checked here with CPU stand-ins: a Mac's MPS (no float64),
a GPU machine training on its CPU (NCCL vs gloo), a GPU run resumed on a CPU (fused AdamW)."""

from __future__ import annotations

import time

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from torch.overrides import TorchFunctionMode

from rnngen.cli.main import cli
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError
from rnngen.models import build, checkpoint, minimal
from rnngen.models import device as devices
from rnngen.store.runs import LAST, RunFolder
from rnngen.training import distributed
from rnngen.training.evaluate import evaluate
from rnngen.training.metrics import Interval
from rnngen.training.trainer import Trainer


class NoFloat64(TorchFunctionMode):
    """Fails as MPS does on any float64 tensor (`Cannot convert a MPS Tensor to float64 dtype`)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64:
                raise TypeError(f"{func.__name__} made a float64 tensor, which MPS does not support")
        return result


def as_on_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan picks its precision as it would on MPS."""
    monkeypatch.setattr(minimal, "scan_dtype", lambda device: torch.float32)


@pytest.mark.parametrize("kind", ["lstm", "mingru"])
def test_evaluation_runs_without_float64_and_matches_the_float64_sum(char_corpus, kind, monkeypatch):
    torch.manual_seed(0)
    model = build(ModelConfig(kind=kind, vocab_size=char_corpus.vocab_size, embed=32, hidden=32, layers=2))
    args = (char_corpus.tokens("val"), char_corpus.characters("val"), 4, 16, None, torch.device("cpu"))
    reference = evaluate(model, *args)
    as_on_mps(monkeypatch)
    with NoFloat64():
        figures = evaluate(model, *args)
    assert figures["val_tokens"] == reference["val_tokens"] > 1000
    assert figures["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)


def test_a_min_model_trains_without_float64(char_corpus, tmp_path, monkeypatch):
    model_cfg = ModelConfig(kind="minlstm", vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=1)
    train_cfg = TrainConfig(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup=2,
        steps=6,
        time_budget=None,
        eval_every=3,
        eval_tokens=500,
        log_every=2,
    )
    as_on_mps(monkeypatch)
    with NoFloat64():
        summary = Trainer(char_corpus, model_cfg, train_cfg, RunFolder(tmp_path / "runs" / "mac")).fit()
    assert summary["steps"] == 6 and summary["val_loss"] > 0


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
@pytest.mark.parametrize(("length", "bound"), [(256, 1e-4), (2048, 1e-3)])
def test_the_float32_scan_stays_close_to_the_float64_scan(kind, length, bound):
    torch.manual_seed(0)
    layer = minimal.MinRecurrentLayer(kind, 64, 64)
    with torch.no_grad():
        log_a, log_b = layer.coefficients(torch.randn(4, length, 64))
        log_h0 = torch.log(torch.rand(4, 64))
        exact = minimal.parallel_scan_log(log_a, log_b, log_h0, torch.float64)
        approx = minimal.parallel_scan_log(log_a, log_b, log_h0, torch.float32)
    assert minimal.scan_dtype(torch.device("cpu")) == torch.float64
    assert minimal.scan_dtype(torch.device("mps")) == torch.float32
    assert 0 < ((approx - exact).abs() / exact.abs()).max() < bound


def test_cpu_training_on_a_gpu_machine_uses_gloo(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for("auto") == "nccl"
    assert distributed.backend_for("cuda") == "nccl"


def test_more_processes_than_gpus_is_refused_before_torchrun_starts(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = CliRunner().invoke(cli, ["train", "--nproc", "2", "--preset", "tiny"])
    assert result.exit_code == 1
    assert result.output == (
        "error: --nproc 2: this machine has 1 GPU, and each process needs its own; "
        "use --nproc 1, or --device cpu for CPU processes\n"
    )
    distributed.check_gpus(2, "cpu")  # CPU processes need no GPU
    # A hand-run torchrun: each process checks before it joins the group.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(RnngenError, match="this machine has 1 GPU"):
        distributed.setup("auto")


def test_a_gpu_run_resumes_on_a_cpu_without_fused_adamw(char_corpus, tmp_path):
    model_cfg = ModelConfig(kind="lstm", vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=1)
    train_cfg = TrainConfig(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup=2,
        steps=10,
        time_budget=None,
        eval_every=10,
        eval_tokens=500,
        log_every=5,
    )
    run = RunFolder(tmp_path / "runs" / "gpu")
    Trainer(char_corpus, model_cfg, train_cfg, run).fit()
    # What a CUDA run saves: AdamW built with fused=True.
    saved = checkpoint.load(run.file(LAST))
    for group in saved.resume_state["optimizer"]["param_groups"]:
        group["fused"] = True
    checkpoint.save(run.file(LAST), saved)

    longer = TrainConfig(**{**train_cfg.to_dict(), "steps": 20})
    trainer = Trainer(char_corpus, model_cfg, longer, run, resume_from=checkpoint.load(run.file(LAST)))
    assert all(not group["fused"] for group in trainer.optimizer.param_groups)
    assert trainer.fit()["steps"] == 20
    groups = checkpoint.load(run.file(LAST)).resume_state["optimizer"]["param_groups"]
    assert all(not group["fused"] for group in groups)


def test_the_time_budget_counts_the_wait_for_the_device(char_corpus, tmp_path, monkeypatch):
    # A GPU runs the queued steps after the host moved on; the host waits for them at the log
    # step's synchronisation. The stand-in: a clock that only moves there, by 1 s per wait.
    clock = [0.0]
    synchronise = Interval.losses_and_norms

    def waiting_figures(self):
        clock[0] += 1.0
        return synchronise(self)

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(Interval, "losses_and_norms", waiting_figures)
    model_cfg = ModelConfig(kind="lstm", vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=1)
    train_cfg = TrainConfig(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup=2,
        steps=10,
        time_budget=None,
        eval_every=10,
        eval_tokens=500,
        log_every=5,
    )
    summary = Trainer(char_corpus, model_cfg, train_cfg, RunFolder(tmp_path / "runs" / "queued")).fit()
    assert summary["seconds"] == 2.0
    logged = [row for row in RunFolder(tmp_path / "runs" / "queued").metrics() if row["event"] == "train"]
    assert [row["tokens_per_s"] for row in logged] == [5 * 4 * 16 / 1.0] * 2


def test_auto_precision_is_bf16_only_where_the_cpu_computes_bf16(monkeypatch):
    model = build(ModelConfig(kind="lstm", vocab_size=50, embed=16, hidden=32, layers=1))
    ids = torch.randint(0, 50, (2, 8))
    cpu = torch.device("cpu")
    for native, precision, dtype in (
        (True, "auto", torch.bfloat16),
        (False, "auto", torch.float32),
        (True, "fp32", torch.float32),
        (False, "bf16", torch.bfloat16),  # asked for: emulated, slower, but what the user chose
    ):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda native=native: {"avx512_bf16": native})
        with devices.autocast(cpu, precision):
            logits, state = model(ids)
        assert logits.dtype == dtype, (native, precision)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_auto_precision_on_cuda_is_bf16_only_on_gpus_that_compute_it(monkeypatch):
    for capability, native in (((9, 0), True), ((8, 0), True), ((7, 5), False)):  # H100, A100; a T4 emulates bf16
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, found=capability: found)
        assert devices.computes_bf16(torch.device("cuda")) is native


def test_bf16_where_it_cannot_run_and_an_unknown_precision_are_refused_naming_the_choices():
    with pytest.raises(RnngenError, match=r"precision.* bf16 runs on cpu or cuda, not mps: use fp32 \(or auto\)"):
        devices.autocast(torch.device("mps"), "bf16")
    with pytest.raises(RnngenError, match="unknown .*precision.* 'fp16': choose one of auto, fp32, bf16"):
        TrainConfig(precision="fp16")


def test_a_bf16_run_saves_float32_tensors_and_resumes_in_fp32(char_corpus, tmp_path):
    model_cfg = ModelConfig(kind="lstm", vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=2)
    train_cfg = TrainConfig(
        batch_size=4, seq_len=16, warmup=2, steps=10, time_budget=None, eval_every=10, eval_tokens=500, precision="bf16"
    )
    run = RunFolder(tmp_path / "runs" / "bf16")
    Trainer(char_corpus, model_cfg, train_cfg, run).fit()
    assert run.config()["train"]["precision"] == "bf16"
    # Every tensor of the checkpoint, the carried state included, is float32: NumPy readers can open it.
    with safe_open(run.file(LAST), framework="pt") as file:
        assert {file.get_slice(name).get_dtype() for name in file.keys()} <= {"F32", "I64", "U8"}
    longer = TrainConfig(**{**train_cfg.to_dict(), "steps": 20, "precision": "fp32"})
    resumed = Trainer(char_corpus, model_cfg, longer, run, resume_from=checkpoint.load(run.file(LAST)))
    assert resumed.fit()["steps"] == 20
    assert checkpoint.load(run.file(LAST)).training.precision == "fp32"
