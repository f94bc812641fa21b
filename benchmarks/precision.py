"""bf16 autocast against float32 on this machine's CPU, for the `cpu` preset's candidate shapes (`Preset.sizes`).

Speed: training tokens per second of each shape in each precision, measured as the sizing probe measures them
(`rnngen.training.sizing.pace`), the two precisions alternating, the median of REPEATS. It answers the equal
wall-clock question: how many more tokens bf16 buys in the same seconds on this machine. Quality (with
`--budgets`): the held-out bits/char each precision reaches at equal tokens, scored in float32 over the held-out text
read as one stream: what a token trained in bf16 is worth.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks import sweep
from benchmarks.common import prepared
from benchmarks.firstrun import held_out_bpc
from rnngen.config import PRESETS
from rnngen.models.precision import lacks_bf16
from rnngen.training.sizing import pace

REPEATS = 3
PRECISIONS = ("fp32", "bf16")


def run(text: Path, root: Path, budgets: list[int] | None, only: list[str] | None) -> list[dict[str, Any]]:
    """Each shape's tokens/s in both precisions on tiny shakespeare (char), and its bits/char at each of `budgets`
    (tokens); `only` keeps the shapes it names (`384x32`)."""
    preset = PRESETS["cpu"]
    shapes = {f"{width}x{batch}": (width, batch) for width, batch in preset.sizes}
    if set(only or ()) - set(shapes):
        raise SystemExit(f"precision --only names {sorted(set(only or ()) - set(shapes))}: choose among {list(shapes)}")
    corpus = prepared(root, str(text), "char", None, "shakespeare-char")
    tokens = corpus.tokens("train")
    native = lacks_bf16(torch.device("cpu")) is None
    rows: list[dict[str, Any]] = []
    for name, (width, batch) in shapes.items():
        if only and name not in only:
            continue
        model = dataclasses.replace(preset.model, hidden=width, embed=width, vocab_size=corpus.vocab_size)
        paces: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
        for _ in range(REPEATS):
            for precision in PRECISIONS:
                train = dataclasses.replace(preset.train, batch_size=batch, precision=precision, device="cpu")
                paces[precision].append(pace(model, train, tokens))
        fp32, bf16 = (statistics.median(paces[precision]) for precision in PRECISIONS)
        rows.append(
            {
                "benchmark": "precision-speed",
                "shape": name,
                "bf16_native": native,
                "fp32_tokens_per_s": fp32,
                "bf16_tokens_per_s": bf16,
                "speedup": bf16 / fp32,
            }
        )
        print(rows[-1], flush=True)
        for budget in budgets or ():
            bpc = {
                precision: sweep.point(
                    corpus,
                    {
                        "name": f"{name}-{precision}",
                        "model": {"hidden": width, "embed": width},
                        "train": {"batch_size": batch, "precision": precision, "device": "cpu"},
                    },
                    None,
                    budget // (batch * preset.train.seq_len),
                    "cpu",
                    held_out_bpc(corpus),
                )["val_bpc"]
                for precision in PRECISIONS
            }
            rows.append(
                {
                    "benchmark": "precision-quality",
                    "shape": name,
                    "tokens": budget,
                    "fp32_bpc": bpc["fp32"],
                    "bf16_bpc": bpc["bf16"],
                    "difference": bpc["bf16"] - bpc["fp32"],
                }
            )
            print(rows[-1], flush=True)
    return rows
