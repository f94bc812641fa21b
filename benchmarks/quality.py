"""Quality on tiny shakespeare: bits per character after 180 s of training on this machine.

The char-level runs compare with nanoGPT's CPU recipe (1.88 nats/char here in the same budget);
the subword run (LSTM, unigram, 1024 pieces) is scored per character of the same held-out text.
Every model uses the cpu preset's sizes and schedule.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import prepared
from rnngen.pipeline import train


def run(text: Path, root: Path, seconds: float, models: list[str]) -> list[dict[str, Any]]:
    rows = []
    cases = [(model, "char", None) for model in models] + ([("lstm", "unigram", 1024)] if "lstm" in models else [])
    for model, kind, vocab in cases:
        corpus = prepared(root, str(text), kind, vocab, f"shakespeare-{kind}")
        with tempfile.TemporaryDirectory() as folder:
            summary = train(
                corpus,
                "cpu",
                checkpoints=folder,
                name="run",
                kind=model,
                time_budget=seconds,
                eval_tokens=0,  # the whole held-out split
                eval_every=250,
            ).to_dict()
        nats_per_char = summary["best_val_bpc"] * 0.6931471805599453
        rows.append(
            {
                "benchmark": "quality",
                "model": f"{model} 2x384",
                "tokenizer": f"{kind} {corpus.vocab_size}",
                "seconds": seconds,
                "steps": summary["steps"],
                "tokens_per_s": summary["tokens_per_s"],
                "val_bpc": summary["best_val_bpc"],
                "val_nats_per_char": nats_per_char,
                "target_nats_per_char": 1.70 if (model, kind) == ("lstm", "char") else None,
                "pass": nats_per_char <= 1.70 if (model, kind) == ("lstm", "char") else None,
            }
        )
    return rows
