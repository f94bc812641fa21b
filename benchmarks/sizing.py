"""The runs behind the time-budget sizing rule (rnngen.training.sizing), and its fit.

`python -m benchmarks sizing` trains the cpu preset's candidate shapes at equal tokens (a step budget, so the
figures do not depend on the machine's load) on tiny shakespeare (char and unigram 1024) and the embedded pydocs,
scores each over the held-out text read as one stream, and appends a row per run to `--out/sizing.jsonl`.
`python -m benchmarks sizing --fit FILE` fits the rule's coefficients to the rows of FILE (the committed
benchmarks/sizing_runs.jsonl holds those the shipped coefficients come from), prints them, and draws each corpus's
measured and fitted curves (`--plot PNG`).

The fit is Hoffmann et al. 2022's approach 3 in the form bpc = E_corpus + A / N^alpha + B / D'^beta, N the
recurrent parameters in millions and D' the tokens in millions discounted for repeated passes (Muennighoff et al.
2023): alpha, beta and R* by a grid, E (an offset per corpus), A and B by least squares, A and B kept positive. The
grid reaches the physical bounds: a power of 0 (its limit, the log: `sizing.decay`) and R* = inf (no discount). With
three widths alpha comes out at 0, near Kaplan et al. 2020's small 0.076 for N, and E then absorbs the constant: the
offsets are not the texts' entropies, and the rule uses only the differences between shapes.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import sweep
from benchmarks.common import prepared
from benchmarks.firstrun import held_out_bpc
from rnngen.config import PRESETS, ModelConfig
from rnngen.training.sizing import LossFit, decay, effective_tokens, recurrent_parameters

# (corpus, tokenizer, vocabulary): the texts the rule is fitted on.
CORPORA = (("shakespeare", "char", None), ("shakespeare", "unigram", 1024), ("pydocs", None, None))
BUDGETS = (1_000_000, 4_000_000)  # tokens per run
# The grid of the powers and R*: each from its physical bound to well past where the stored runs put it.
ALPHAS = BETAS = np.round(np.arange(0.0, 2.01, 0.05), 2)
REPEATS = (1.0, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0, 100.0, 300.0, 1000.0, math.inf)
# The bounds no wider grid could pass: a power of 0 (the log; below it a larger model would gain more per parameter)
# and R* = inf (every pass counts in full). A best value on any other edge of the grid means a wider grid fits better.
BOUNDS = {"alpha": 0.0, "beta": 0.0, "repeats": math.inf}
# Past this many passes over the text the held-out loss rises again (overfitting), which the form cannot express:
# such runs are left out of the fit.
MAX_PASSES = 10


def family(tokenizer: str) -> str:
    """The fit a tokenizer belongs to (rnngen.training.sizing.fit_for's keys)."""
    return "char" if tokenizer.startswith("char") else "subword"


def run(
    text: Path, root: Path, out: Path, budgets: list[int] | None = None, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every candidate of the cpu preset at every budget (tokens; default BUDGETS) on every corpus, each row
    appended to `out` as it ends. `only` keeps the corpora (`shakespeare-char`, `shakespeare-unigram1024`,
    `pydocs-default`) and shapes (`256x32`) it names, each kind of name filtering only when some are given."""
    corpora = {f"{source}-{kind or 'default'}{vocab or ''}": (source, kind, vocab) for source, kind, vocab in CORPORA}
    shapes = {f"{width}x{batch}": (width, batch) for width, batch in PRESETS["cpu"].sizes}
    named = set(only or ())
    if named - set(corpora) - set(shapes):
        raise SystemExit(
            f"sizing --only names {sorted(named - set(corpora) - set(shapes))}: choose among "
            f"{', '.join([*corpora, *shapes])}"
        )
    rows = []
    for name, shape, budget in itertools.product(corpora, shapes, budgets or BUDGETS):
        if (named & set(corpora) and name not in named) or (named & set(shapes) and shape not in named):
            continue
        (source, kind, vocab), (width, batch) = corpora[name], shapes[shape]
        dataset = "pydocs" if source == "pydocs" else str(text)
        corpus = prepared(root, dataset, kind or "unigram", vocab, name)
        row = sweep.point(
            corpus,
            {"name": shape, "model": {"hidden": width, "embed": width}, "train": {"batch_size": batch}},
            None,
            budget // (batch * PRESETS["cpu"].train.seq_len),
            "cpu",
            held_out_bpc(corpus),
        )
        row |= {"benchmark": "sizing", "corpus": source, "train_tokens": len(corpus.tokens("train"))}
        rows.append(row)
        with out.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("corpus", "tokenizer", "point", "tokens", "val_bpc")}), flush=True)
    return rows


def _features(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    params = np.array([recurrent_parameters(ModelConfig(**row["model"])) / 1e6 for row in rows])
    tokens = np.array([row["tokens"] for row in rows], dtype=float)
    unique = np.array([row["train_tokens"] for row in rows], dtype=float)
    bpc = np.array([row["val_bpc"] for row in rows])
    names = sorted({f"{row['corpus']} {row['tokenizer']}" for row in rows})
    return params, tokens, unique, bpc, names


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The coefficients of one family's rows: alpha, beta, R*, A, B, each corpus's E, the fit's RMS error, the most
    passes over a text among the rows (where the rule stops), and the coefficients on an open edge of the grid."""
    params, tokens, unique, bpc, names = _features(rows)
    corpus = np.array([names.index(f"{row['corpus']} {row['tokenizer']}") for row in rows])
    offsets = np.eye(len(names))[corpus]
    best: dict[str, Any] | None = None
    for repeats in REPEATS:
        seen = np.array([effective_tokens(d, u, repeats) for d, u in zip(tokens, unique)]) / 1e6
        for alpha, beta in itertools.product(ALPHAS, BETAS):
            design = np.column_stack([offsets, decay(params, alpha), decay(seen, beta)])
            solution, *_ = np.linalg.lstsq(design, bpc, rcond=None)
            a, b = solution[-2:]
            if a <= 0 or b <= 0:
                continue
            rms = float(np.sqrt(np.mean((design @ solution - bpc) ** 2)))
            if best is None or rms < best["rms"]:
                best = {
                    "alpha": float(alpha),
                    "beta": float(beta),
                    "repeats": repeats,
                    "a": float(a),
                    "b": float(b),
                    "offsets": dict(zip(names, map(float, solution[: len(names)]))),
                    "rms": rms,
                    "runs": len(rows),
                    "passes": float(np.max(tokens / unique)),
                }
    if best is None:
        raise SystemExit("no fit with positive A and B: the rows do not show loss falling with size and tokens")
    grids = {"alpha": ALPHAS, "beta": BETAS, "repeats": REPEATS}
    clipped = [name for name, grid in grids.items() if best[name] in (grid[0], grid[-1]) and best[name] != BOUNDS[name]]
    return best | {"clipped": clipped}


def fit_file(path: Path, plot: Path | None) -> list[dict[str, Any]]:
    """The fit of each family in the rows of `path`, printed; their curves drawn into `plot`."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fits = []
    for name in ("char", "subword"):
        chosen = [
            row
            for row in rows
            if family(row["tokenizer"]) == name and row["tokens"] <= MAX_PASSES * row["train_tokens"]
        ]
        if chosen:
            fits.append({"benchmark": "sizing-fit", "family": name, **fit(chosen)})
    if plot is not None:
        draw(rows, {f["family"]: f for f in fits}, plot)
    return fits


def draw(rows: list[dict[str, Any]], fits: dict[str, dict[str, Any]], path: Path) -> None:
    """Held-out bits/char against tokens, one panel per corpus, measured points and fitted curves per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({(row["corpus"], row["tokenizer"]) for row in rows})
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for axis, (source, tokenizer) in zip(axes[0], names):
        chosen = [row for row in rows if (row["corpus"], row["tokenizer"]) == (source, tokenizer)]
        coefficients = fits[family(tokenizer)]
        offset = coefficients["offsets"][f"{source} {tokenizer}"]
        rule = LossFit(**{key: coefficients[key] for key in ("a", "alpha", "b", "beta", "repeats", "passes")})
        unique = chosen[0]["train_tokens"]
        for width in sorted({row["model"]["hidden"] for row in chosen}):
            mine = sorted((row for row in chosen if row["model"]["hidden"] == width), key=lambda row: row["tokens"])
            params = recurrent_parameters(ModelConfig(**mine[0]["model"]))
            grid = np.geomspace(2e5, 2e7, 60)
            curve = [offset + rule.excess(params, tokens, unique) for tokens in grid]
            (line,) = axis.plot(grid, curve, label=f"2x{width}")
            axis.plot([row["tokens"] for row in mine], [row["val_bpc"] for row in mine], "o", color=line.get_color())
        axis.set(xscale="log", xlabel="training tokens", ylabel="held-out bits/char", title=f"{source}, {tokenizer}")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
