"""Data-parallel training with torchrun on CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnngen.data.streams import TokenStream
from rnngen.models import checkpoint
from rnngen.store.runs import LAST, RunFolder
from rnngen.training.evaluate import score


def train(tmp_path: Path, run: str, nproc: int, batch: int | None, *extra: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    args = [
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
        "--steps",
        "40",
        *(["--batch-size", str(batch)] if batch else []),
        "--log-every",
        "1",
        "--eval-every",
        "20",
        "--eval-tokens",
        "2000",
        "--plain",
        "--name",
        run,
        *extra,
    ]
    command = launcher + args if nproc > 1 else [sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_ranks_read_disjoint_rows_of_one_global_batch():
    tokens = np.arange(1000)
    ranks = [TokenStream(tokens, rows=2, seq_len=10, first_row=rank * 2, total_rows=4) for rank in range(2)]
    single = TokenStream(tokens, rows=4, seq_len=10)
    for window in (0, 3):
        parts = [stream.window(window) for stream in ranks]
        assert not set(parts[0].ravel()) & set(parts[1].ravel())
        assert np.array_equal(np.concatenate(parts), single.window(window))


def test_two_processes_match_one_with_the_same_global_batch(char_corpus, tmp_path):
    two = train(tmp_path, "two", 2, 4)
    assert two.returncode == 0, two.stderr[-3000:]
    one = train(tmp_path, "one", 1, 8)
    assert one.returncode == 0, one.stderr[-3000:]

    def curve(run: str) -> dict[int, float]:
        rows = RunFolder(tmp_path / "checkpoints" / run).metrics()
        return {row["step"]: row["loss"] for row in rows if row["event"] == "train"}

    a, b = curve("two"), curve("one")
    assert sorted(a) == sorted(b) == list(range(1, 41))
    # Same data, same averaged gradients: only the order of floating-point sums differs.
    assert max(abs(a[s] - b[s]) for s in a) < 1e-3
    assert "2 processes, global batch 8 rows" in two.stderr
    # Rank 0 alone draws the sample at each evaluation.
    assert [
        row["step"] for row in RunFolder(tmp_path / "checkpoints" / "two").metrics() if row["event"] == "sample"
    ] == [20, 40]

    # One checkpoint, in the single-process format: it loads and completes in one process.
    files = sorted(p.name for p in (tmp_path / "checkpoints" / "two").iterdir())
    assert files == ["best.safetensors", "config.json", "last.safetensors", "metrics.jsonl", "tokenizer.model"]
    model, tok, ckpt = checkpoint.load_model(
        RunFolder(tmp_path / "checkpoints" / "two"), tmp_path / "checkpoints" / "two" / "best.safetensors"
    )
    assert ckpt.step == 40
    complete = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnngen",
            "--checkpoints-dir",
            str(tmp_path / "checkpoints"),
            "complete",
            "the model",
            "--checkpoint",
            "two",
            "--max-tokens",
            "10",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert json.loads(complete.stdout)["tokens"] >= 1


def test_resume_with_another_world_size_through_nproc(char_corpus, tmp_path):
    assert train(tmp_path, "grow", 1, 8).returncode == 0
    # `rnngen train --nproc 2` launches torchrun itself.
    resumed = train(tmp_path, "ignored", 1, None, "--resume", "grow", "--steps", "60", "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoint.load(tmp_path / "checkpoints" / "grow" / "last.safetensors").step == 60


def test_a_worker_error_under_nproc_is_one_line_once_and_leaves_no_run(char_corpus, tmp_path):
    failed = train(tmp_path, "r", 1, 100_000, "--nproc", "2", "--device", "cpu")
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        "error: the corpus has 27000 training tokens, too few for 200000 rows of 33 tokens: use a smaller "
        "--batch-size or --seq-len"
    ]
    assert not (tmp_path / "checkpoints" / "r").exists()


def test_interrupting_one_rank_stops_every_rank_with_last_saved(char_corpus, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = [
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
        "--steps",
        "100000",
        "--batch-size",
        "4",
        "--log-every",
        "5",
        "--eval-every",
        "1000",
        "--plain",
        "--name",
        "stop",
    ]
    process = subprocess.Popen(launcher + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "checkpoints" / "stop" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("train") >= 20):
        time.sleep(0.1)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[1]), signal.SIGINT)  # one rank only, as when a scheduler signals one process
    _, stderr = process.communicate(timeout=120)
    assert "stopped by SIGINT" in stderr or "stopped by SIGTERM" in stderr
    saved = checkpoint.load(tmp_path / "checkpoints" / "stop" / "last.safetensors")
    assert saved.step >= 100 and saved.step % 5 == 0  # saved at the interrupt, not at an evaluation


RANKS_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
import torch
from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.reading import Corpus
from rnngen.models import checkpoint
from rnngen.training import distributed
from rnngen.store.runs import LAST, RunFolder
from rnngen.training.trainer import Trainer

root, out = Path(sys.argv[1]), Path(sys.argv[2])
world = distributed.setup("cpu")
corpus = Corpus.find(root / "corpora", "notes")
model_cfg = ModelConfig(kind="lstm", vocab_size=corpus.vocab_size, embed=16, hidden=16, layers=1, dropout=0.2)
train_cfg = TrainConfig(batch_size=3, seq_len=16, lr=1e-2, warmup=2, steps=6, time_budget=None, eval_every=6,
                        eval_tokens=0, log_every=3, device="cpu")
run = RunFolder(root / "checkpoints" / "ranks")
trainer = Trainer(corpus, model_cfg, train_cfg, run, world=world)
summary = trainer.fit()
distributed.barrier()  # rank 0 has written last
saved_rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
longer = TrainConfig(**{**train_cfg.to_dict(), "steps": 12})
Trainer(corpus, model_cfg, longer, run, resume_from=checkpoint.load(run.file(LAST)), world=world)
resumed_rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
(out / f"rank{world.rank}.json").write_text(json.dumps(
    {"val_loss": summary["val_loss"], "saved_rng": saved_rng, "resumed_rng": resumed_rng}))
distributed.teardown()
"""


def test_ranks_evaluate_their_share_and_resume_their_own_random_state(char_corpus, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # Each rank draws its own dropout masks, and a resumed rank continues its own generator.
    assert ranks[0]["saved_rng"] != ranks[1]["saved_rng"]
    assert [r["resumed_rng"] for r in ranks] == [r["saved_rng"] for r in ranks]

    # Both ranks report the loss that one process computes over all 6 rows of the same model.
    assert ranks[0]["val_loss"] == ranks[1]["val_loss"]
    run = RunFolder(tmp_path / "checkpoints" / "ranks")
    model, _, _ = checkpoint.load_model(run, run.file(LAST))
    figures = score(
        model,
        char_corpus.tokens("val"),
        char_corpus.characters("val"),
        6,
        16,
        None,
        torch.device("cpu"),
        precision=run.config()["arithmetic"]["precision"],  # the arithmetic the ranks evaluated in
    )
    assert abs(figures["loss"] - ranks[0]["val_loss"]) < 1e-5


TIMED_SCRIPT = """
import sys, time
from pathlib import Path
import torch
from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.reading import Corpus
from rnngen.store.runs import RunFolder
from rnngen.training import distributed
from rnngen.training.events import Logged
from rnngen.training.trainer import Trainer

root, out = Path(sys.argv[1]), Path(sys.argv[2])
world = distributed.setup("cpu")
corpus = Corpus.find(root / "corpora", "notes")
model_cfg = ModelConfig(kind="lstm", vocab_size=corpus.vocab_size, embed=16, hidden=16, layers=1, dropout=0.0)
train_cfg = TrainConfig(batch_size=2, seq_len=16, lr=1e-2, warmup=2, steps=None, time_budget=2.0, eval_every=10**6,
                        eval_tokens=500, log_every=2, device="cpu", ema=0.9, samples=False)


def display(event):
    # Rank 0 alone draws the display; a slow terminal makes the other ranks wait for it.
    if isinstance(event, Logged):
        time.sleep(0.02)


trainer = Trainer(corpus, model_cfg, train_cfg, RunFolder(root / "checkpoints" / "timed"), world=world,
                  on_event=display if world.is_main else None)
trainer.fit()
torch.save({"model": trainer.model.state_dict(), "average": trainer.saved_model.state_dict(),
            "step": trainer.budget.step, "seconds": trainer.budget.seconds}, out / f"timed{world.rank}.pt")
distributed.teardown()
"""


def test_a_time_budget_keeps_every_rank_identical(char_corpus, tmp_path):
    script = tmp_path / "timed.py"
    script.write_text(TIMED_SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*launcher, str(script), str(tmp_path), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"timed{rank}.pt") for rank in (0, 1)]
    # One clock for all ranks: the same steps, seconds, learning rates and weight-average decays.
    assert ranks[0]["step"] == ranks[1]["step"] > 2
    assert ranks[0]["seconds"] == ranks[1]["seconds"]
    for weights in ("model", "average"):
        for name, tensor in ranks[0][weights].items():
            assert torch.equal(tensor, ranks[1][weights][name]), f"{weights} {name} differs between the ranks"


def test_the_launcher_says_what_stopped_the_first_worker_to_fail(tmp_path):
    from rnngen.training.workers import first_error

    (tmp_path / "rank-0").write_text("stopped by SIGTERM")  # what torchrun did to rank 0 after rank 1 died
    (tmp_path / "first-failure").write_text("1 -9")
    assert first_error(tmp_path, signalled=False) == (
        "error: training process 1 was killed by SIGKILL (out of memory? a smaller --batch-size or fewer --nproc "
        "need less)"
    )
    (tmp_path / "rank-1").write_text("error: its own words")
    assert first_error(tmp_path, signalled=False) == "error: its own words"
    assert first_error(tmp_path, signalled=True) == "stopped by SIGTERM"  # a Ctrl-C: rank 0's word on the save
