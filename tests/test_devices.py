"""Correct on the devices a user has, checked here with CPU stand-ins: a Mac's MPS (no float64),
a GPU machine training on its CPU (NCCL vs gloo), a GPU run resumed on a CPU (fused AdamW)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from torch.overrides import TorchFunctionMode

import rnngen
from rnngen.cli.main import cli
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError
from rnngen.models import build, checkpoint, minimal, precision
from rnngen.store.runs import LAST, RunFolder
from rnngen.training import distributed
from rnngen.training.evaluate import score
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
    reference = score(model, *args)
    as_on_mps(monkeypatch)
    with NoFloat64():
        figures = score(model, *args)
    assert figures["tokens"] == reference["tokens"] > 1000
    assert figures["loss"] == pytest.approx(reference["loss"], rel=1e-5)


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


def pretend_cpu(monkeypatch, flags: bool, isa: str = "AVX512", runs: bool = True) -> None:
    """A CPU with (or without) bf16 in its flags, ATen dispatching `isa`, and models that do (or do not) run in bf16
    under autocast, whatever CPU runs the test."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": flags}, raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    monkeypatch.setattr(precision, "runs_bf16", lambda device, kind, impl: runs)


@pytest.mark.parametrize(
    "flags, isa, runs, requested, resolved, why",
    [
        (True, "AVX512", True, "auto", "bf16", "this CPU computes bf16"),
        (False, "AVX512", True, "auto", "fp32", "this CPU has no bf16 arithmetic"),  # a Zen 3
        (True, "AVX2", True, "auto", "fp32", "this CPU has no bf16 arithmetic"),  # ATEN_CPU_CAPABILITY=avx2
        (True, "AVX512", False, "auto", "fp32", "this CPU has no bf16 arithmetic"),  # ONEDNN_MAX_CPU_ISA=AVX2
        (True, "AVX512", True, "fp32", "fp32", "asked for"),
        (False, "AVX512", True, "bf16", "bf16", "asked for; emulated on this CPU, slower"),  # a GRU on a Zen 3
    ],
)
def test_a_precision_resolves_to_what_runs_on_the_cpu_and_says_why(
    monkeypatch, flags, isa, runs, requested, resolved, why
):
    pretend_cpu(monkeypatch, flags, isa, runs)
    arithmetic = precision.resolve(requested, torch.device("cpu"), ModelConfig(kind="lstm"))
    assert (arithmetic.precision, arithmetic.reason) == (resolved, why)
    name = "bf16" if resolved == "bf16" else "float32"
    assert arithmetic.line() == f"arithmetic: {name} ({requested}: {why})"


def test_bf16_where_the_model_cannot_run_in_it_is_refused_in_one_line_naming_the_fix(monkeypatch):
    pretend_cpu(monkeypatch, flags=False, runs=False)
    with pytest.raises(RnngenError, match=r"precision.* bf16: PyTorch cannot run the lstm in bf16 on this CPU .*use "):
        precision.resolve("bf16", torch.device("cpu"), ModelConfig(kind="lstm"))


def test_this_cpu_trains_in_what_auto_resolves_to_and_an_explicit_bf16_runs_or_is_refused():
    """On any CPU, the real one: auto trains, in the dtype it names; bf16 trains or is refused (never a RuntimeError
    from oneDNN). `.ci/run` runs this again with the CPU limited to AVX2."""
    config = ModelConfig(kind="lstm", vocab_size=50, embed=16, hidden=32, layers=2)
    model, cpu = build(config), torch.device("cpu")
    ids = torch.randint(0, 50, (2, 8))
    for requested in ("auto", "bf16"):
        try:
            arithmetic = precision.resolve(requested, cpu, config)
        except RnngenError:
            assert requested == "bf16" and not precision.runs_bf16(cpu, "lstm", "fused")
            continue
        with precision.autocast(cpu, arithmetic.precision):
            logits, state = model(ids)
        logits.float().sum().backward()
        assert logits.dtype == (torch.bfloat16 if arithmetic.precision == "bf16" else torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="AVX2 limits are for x86 CPUs")
def test_an_isa_limited_to_avx2_is_seen_as_a_cpu_without_bf16():
    """ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY are read when torch loads: a fresh interpreter with both set to
    AVX2 resolves auto to float32 and refuses an LSTM in bf16, whatever the CPU."""
    script = (
        "import torch\n"
        "from rnngen.config import ModelConfig\n"
        "from rnngen.errors import RnngenError\n"
        "from rnngen.models import precision\n"
        "cpu = torch.device('cpu')\n"
        "print(precision.resolve('auto', cpu, ModelConfig(kind='gru')).precision)\n"
        "try:\n"
        "    precision.resolve('bf16', cpu, ModelConfig(kind='lstm'))\n"
        "except RnngenError:\n"
        "    print('refused')\n"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["fp32", "refused"], done.stderr


def test_auto_precision_on_cuda_is_bf16_only_on_gpus_that_compute_it(monkeypatch):
    for capability, native in (((9, 0), True), ((8, 0), True), ((7, 5), False)):  # H100, A100; a T4 emulates bf16
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, found=capability: found)
        assert (precision.lacks_bf16(torch.device("cuda")) is None) is native


def test_bf16_off_cpu_and_cuda_and_an_unknown_precision_are_refused_naming_the_choices():
    with pytest.raises(RnngenError, match=r"precision.* bf16 runs on cpu or cuda, not mps: use fp32 \(or auto\)"):
        precision.resolve("bf16", torch.device("mps"), ModelConfig())
    with pytest.raises(RnngenError, match="unknown .*precision.* 'fp16': choose one of auto, fp32, bf16"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_a_bf16_run_saves_float32_tensors_and_resumes_in_fp32(char_corpus, tmp_path, kind):
    if not precision.runs_bf16(torch.device("cpu"), kind, "fused"):
        pytest.skip(f"PyTorch cannot run the {kind} in bf16 on this CPU (no bf16 arithmetic)")
    model_cfg = ModelConfig(kind=kind, vocab_size=char_corpus.vocab_size, embed=16, hidden=16, layers=2)
    train_cfg = TrainConfig(
        batch_size=4, seq_len=16, warmup=2, steps=10, time_budget=None, eval_every=10, eval_tokens=500, precision="bf16"
    )
    run = RunFolder(tmp_path / "runs" / "bf16")
    Trainer(char_corpus, model_cfg, train_cfg, run).fit()
    assert run.config()["train"]["precision"] == "bf16"
    assert run.config()["arithmetic"]["precision"] == "bf16"
    # Every tensor of the checkpoint, the carried state included, is float32: NumPy readers can open it.
    with safe_open(run.file(LAST), framework="pt") as file:
        assert {file.get_slice(name).get_dtype() for name in file.keys()} <= {"F32", "I64", "U8"}
    longer = TrainConfig(**{**train_cfg.to_dict(), "steps": 20, "precision": "fp32"})
    resumed = Trainer(char_corpus, model_cfg, longer, run, resume_from=checkpoint.load(run.file(LAST)))
    assert resumed.fit()["steps"] == 20
    saved = checkpoint.load(run.file(LAST))
    assert (saved.training.precision, saved.arithmetic["precision"]) == ("fp32", "fp32")


def test_a_run_says_and_records_its_arithmetic_and_a_resume_that_changes_it_rewrites_config_json(run_cli, trained):
    run = RunFolder(Path(os.environ["RNNGEN_CHECKPOINTS"]) / trained)
    config = run.config()
    expected = precision.resolve("auto", torch.device("cpu"), ModelConfig.from_dict(config["model"]))
    assert config["arithmetic"] == expected.to_dict()
    listed = json.loads(run_cli("runs", "--json").output)
    assert (listed[0]["precision"], listed[0]["requested"]) == (expected.precision, "auto")
    resumed = run_cli("train", "--resume", trained, "--steps", "40", "--precision", "fp32", "--plain")
    assert resumed.exit_code == 0, resumed.output
    assert "arithmetic: float32 (fp32: asked for)" in resumed.output
    assert f"{run.config_path} now says what this resume runs: steps 30 -> 40, precision auto -> fp32" in " ".join(
        resumed.output.split()
    )
    config = run.config()
    assert (config["step"], config["train"]["precision"], config["arithmetic"]["precision"]) == (40, "fp32", "fp32")
    assert config == {**checkpoint.load(run.file(LAST)).header()}


def test_bf16_where_the_model_cannot_run_in_it_is_refused_before_any_folder_exists(run_cli, monkeypatch):
    pretend_cpu(monkeypatch, flags=False, runs=False)
    # No corpus named: the refusal comes before the embedded corpus would be prepared (minutes).
    result = run_cli("train", "--preset", "tiny", "--steps", "5", "--precision", "bf16")
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "error: --precision bf16: PyTorch cannot run the lstm in bf16 on this CPU (no bf16 arithmetic): use "
        "--precision fp32 (or auto)"
    ]
    for folder in ("RNNGEN_CHECKPOINTS", "RNNGEN_CORPORA"):
        assert not any(Path(os.environ[folder]).glob("*"))
    with pytest.raises(RnngenError, match="precision bf16: PyTorch cannot run the gru"):
        rnngen.train(preset="tiny", kind="gru", steps=5, precision="bf16")
