"""A sweep around a preset (`cpu` unless `--preset gpu`): which model, sizes, vocabulary, batch, window,
schedule, dropout, weight decay and weight averaging give the lowest held-out bits per character in the same budget.

Each point is the preset with some values replaced, trained through the library and evaluated once
at the end over the whole held-out text. The budget is wall time (`--seconds`, what a user gets) or,
on a machine shared with other work, a number of steps (`--steps`), so that points compare at equal
tokens whatever the load. A grid is a JSON list of points:

    [{"name": "gru", "model": {"kind": "gru"}},
     {"name": "unigram 2048", "tokenizer": "unigram", "vocab": 2048},
     {"name": "lr 8e-3", "train": {"lr": 8e-3}}]
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from benchmarks.common import prepared
from rnngen.models.checkpoint import load_model
from rnngen.pipeline import train
from rnngen.store.runs import LAST, RunFolder

# One change at a time from the preset; "preset" is the point every other one is read against.
GRID: list[dict[str, Any]] = [
    {"name": "preset"},
    {"name": "gru", "model": {"kind": "gru"}},
    {"name": "rnn", "model": {"kind": "rnn"}},
    {"name": "untied", "model": {"tie": False}},
    {"name": "width 384", "model": {"embed": 384, "hidden": 384}},
    {"name": "width 768", "model": {"embed": 768, "hidden": 768}},
    {"name": "depth 1", "model": {"layers": 1}},
    {"name": "depth 3", "model": {"layers": 3}},
    {"name": "dropout 0.1", "model": {"dropout": 0.1}},
    {"name": "dropout 0.25", "model": {"dropout": 0.25}},
    {"name": "batch 8", "train": {"batch_size": 8}},
    {"name": "batch 32", "train": {"batch_size": 32}},
    {"name": "window 32", "train": {"seq_len": 32}},
    {"name": "window 128", "train": {"seq_len": 128}},
    {"name": "lr 2e-3", "train": {"lr": 2e-3}},
    {"name": "lr 8e-3", "train": {"lr": 8e-3}},
    {"name": "no warmup", "train": {"warmup": 0}},
    {"name": "cosine to 0", "train": {"min_lr_ratio": 0.0}},
    {"name": "constant lr", "train": {"min_lr_ratio": 1.0}},
    {"name": "weight decay 0", "train": {"weight_decay": 0.0}},
    {"name": "weight decay 0.01", "train": {"weight_decay": 0.01}},
    {"name": "no weight average", "train": {"ema": 0.0}},
    {"name": "weight average 0.4", "train": {"ema": 0.4}},
    {"name": "unigram 512", "tokenizer": "unigram", "vocab": 512},
    {"name": "unigram 1024", "tokenizer": "unigram", "vocab": 1024},
    {"name": "unigram 2048", "tokenizer": "unigram", "vocab": 2048},
]


def point(
    corpus,
    spec: dict[str, Any],
    seconds: float | None,
    steps: int | None,
    preset: str,
    score: Callable[[nn.Module], float] | None = None,
) -> dict[str, Any]:
    """Train one point of the grid through `rnngen.train`; its figures. `score` replaces the run's own final
    bits/char (its evaluation in `batch_size` streams) when a comparison needs every model scored the same way."""
    overrides = {**spec.get("model", {}), **spec.get("train", {})}
    with tempfile.TemporaryDirectory() as folder:
        summary = train(
            corpus,
            preset,
            checkpoints=folder,
            name="point",
            time_budget=seconds,
            steps=steps,
            eval_tokens=0,  # the whole held-out split
            eval_every=10**9,
            **overrides,
        )
        run = RunFolder(Path(summary.run))
        config = run.config()
        val_bpc = score(load_model(run, run.file(LAST))[0]) if score else summary.last_eval.val_bpc
    return {
        "benchmark": "sweep",
        "point": spec["name"],
        "model": config["model"],
        "train": {
            k: config["train"][k]
            for k in ("batch_size", "seq_len", "lr", "warmup", "min_lr_ratio", "weight_decay", "ema")
        },
        "tokenizer": f"{corpus.meta['tokenizer']['type']} {corpus.vocab_size}"
        if isinstance(corpus.meta.get("tokenizer"), dict)
        else str(corpus.vocab_size),
        "sizing": config["sizing"],  # the shapes a time budget chose among, and their paces
        "steps": summary.steps,
        "seconds": summary.seconds,
        "tokens": summary.tokens,
        "tokens_per_s": summary.tokens_per_s,
        "val_bpc": val_bpc,
    }


def run(
    text: Path,
    root: Path,
    seconds: float | None,
    steps: int | None,
    grid: Path | None,
    tokenizer: str,
    only: list[str] | None,
    preset: str = "cpu",
    on_point: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    """Every point of `grid` (the built-in one when None) on `text`, in order; `on_point` gets each as it ends."""
    points = json.loads(grid.read_text()) if grid else GRID
    if only:
        points = [p for p in points if p["name"] in only]
    rows = []
    for spec in points:
        kind, vocab = spec.get("tokenizer", tokenizer), spec.get("vocab")
        name = f"{text.stem if text.is_file() else text}-{kind}{vocab or ''}"
        corpus = prepared(root, str(text), kind, vocab, name)
        rows.append(point(corpus, spec, seconds, steps, preset))
        print(
            json.dumps({k: rows[-1][k] for k in ("point", "tokenizer", "steps", "tokens_per_s", "val_bpc")}), flush=True
        )
        on_point(rows[-1])
    return rows
