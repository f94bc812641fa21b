"""Training throughput: rnngen's loop against a bare PyTorch loop, same model, data and optimizer.

The bare loop is what a person would write by hand: slice a window, forward, loss, backward, clip,
step, carry the detached state (on the same device, in the same arithmetic: `TrainConfig.precision`). rnngen's
`Trainer.fit` adds batching from the memmap, the schedule, logging and metrics; its final evaluation
and checkpoint are not counted. Runs alternate
(bare, rnngen, bare, rnngen, ...) and medians are compared.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.streams import TokenStream
from rnngen.models import build, detach_state
from rnngen.models import device as devices
from rnngen.models.precision import autocast, resolve
from rnngen.store.runs import RunFolder
from rnngen.training.evaluate import next_token_loss
from rnngen.training.trainer import Trainer


def bare_loop(corpus, model_cfg: ModelConfig, cfg: TrainConfig) -> float:
    """Tokens per second of a hand-written truncated-BPTT loop."""
    torch.manual_seed(cfg.seed)
    device = devices.pick(cfg.device)
    model = build(model_cfg).to(device)
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    stream = TokenStream(corpus.tokens("train"), cfg.batch_size, cfg.seq_len)
    windows = [torch.from_numpy(stream.window(i)).to(device) for i in range(cfg.steps)]
    state, precision = None, resolve(cfg.precision, device, model_cfg).precision
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for batch in windows:
        with autocast(device, precision):
            logits, state = model(batch[:, :-1], state)
            loss = next_token_loss(logits, batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = detach_state(state)
    sync()
    return cfg.steps * cfg.batch_size * cfg.seq_len / (time.perf_counter() - started)


def rnngen_loop(corpus, model_cfg: ModelConfig, cfg: TrainConfig) -> float:
    """Tokens per second of `Trainer.fit`, without its final evaluation and checkpoint."""
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(corpus, model_cfg, cfg, RunFolder(Path(folder) / "run"))
        evaluate = trainer.evaluate_and_save
        spent = []

        def timed_evaluate():
            started = time.perf_counter()
            result = evaluate()
            spent.append(time.perf_counter() - started)
            return result

        trainer.evaluate_and_save = timed_evaluate
        started = time.perf_counter()
        trainer.fit()
        return cfg.steps * cfg.batch_size * cfg.seq_len / (time.perf_counter() - started - sum(spent))


def run(corpus, quick: bool) -> list[dict[str, Any]]:
    steps, repeats = (8, 2) if quick else (20, 3)
    rows = []
    for kind in ("rnn", "lstm", "gru"):
        model_cfg = ModelConfig(kind=kind, vocab_size=corpus.vocab_size, embed=256, hidden=512, layers=2)
        cfg = TrainConfig(
            batch_size=32, seq_len=128, steps=steps, time_budget=None, eval_every=10**9, eval_tokens=1000, warmup=5
        )
        bare, ours = [], []
        for _ in range(repeats):
            bare.append(bare_loop(corpus, model_cfg, cfg))
            ours.append(rnngen_loop(corpus, model_cfg, cfg))
        b, o = statistics.median(bare), statistics.median(ours)
        rows.append(
            {
                "benchmark": "train",
                "model": f"{kind} 2x512 emb256",
                "vocab": corpus.vocab_size,
                "batch": cfg.batch_size,
                "seq_len": cfg.seq_len,
                "bare_tokens_per_s": b,
                "rnngen_tokens_per_s": o,
                "ratio": o / b,
                "target": 0.95,
                "pass": o / b >= 0.95,
            }
        )
    return rows
