"""Pictures with matplotlib, an optional extra (`pip install rnngen[plot]`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rnngen.errors import RnngenError
from rnngen.store.runs import RunFolder, logged
from rnngen.training.bits import bits_per_character


def check_image_path(path: Path, option: str) -> None:
    """Fail early, before any work, when matplotlib is missing or cannot write a picture in the format that the
    extension of `path` names (`option`: the flag that passed it)."""
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(path).suffix.lower().lstrip(".") not in formats:
        raise RnngenError(
            f"{option} {path}: end the name with the extension of a picture format matplotlib writes "
            f"({', '.join('.' + name for name in sorted(formats))})"
        )


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RnngenError("pictures need matplotlib: pip install 'rnngen[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gradient_curves(profiles: list[Any], out: Path) -> None:
    """||dL_T/dh_t|| and ||dh_T/dh_t|| against the distance T - t, log scale, one line per model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for prof in profiles:
        distances = range(len(prof.loss_grad))
        axes[0].semilogy(distances, prof.loss_grad, label=prof.label)
        axes[1].semilogy(distances, prof.jacobian, label=prof.label)
    axes[0].set_title("gradient reaching h_t: ||dL_T / dh_t||")
    axes[1].set_title("Jacobian product: ||dh_T / dh_t||_F")
    for ax in axes:
        ax.set_xlabel("distance T - t (steps back)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def metric_against_length(
    title: str,
    xlabel: str,
    ylabel: str,
    series: dict[str, list[tuple[int, float]]],
    baseline: list[tuple[int, float]] | None,
    out: Path,
    log: bool = False,
    solved: list[tuple[int, float]] | None = None,
) -> None:
    """One line per model of (length, value), as `rnngen lab` draws it: the memoryless baseline as a dashed line
    and, when given, the threshold of a solved task as a dotted one; the lengths themselves as the ticks."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, (label, points) in enumerate(series.items()):
        ax.plot([x for x, _ in points], [y for _, y in points], "o-", color=f"C{index}", label=label)
    if baseline:
        ax.plot([x for x, _ in baseline], [y for _, y in baseline], "k--", lw=1.2, label="memoryless baseline")
    if solved:
        ax.plot([x for x, _ in solved], [y for _, y in solved], "g:", lw=1.5, label="solved beyond this line")
    if log:
        ax.set_yscale("log")
    lengths = sorted({x for points in series.values() for x, _ in points})
    ax.set_xscale("log")
    ax.set_xticks(lengths, [str(x) for x in lengths])
    ax.set_xticks([], minor=True)  # the lengths alone, without log-scale ticks between them
    _labelled_to_file(plt, fig, ax, (title, xlabel, ylabel), 8, out)


def learning_curves(
    title: str,
    ylabel: str,
    series: dict[str, list[tuple[int, float]]],
    baselines: dict[str, float],
    out: Path,
    log: bool,
) -> None:
    """Held-out score against training step, one line per run, each run's baseline as a dashed line of its colour."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, (label, points) in enumerate(series.items()):
        color = f"C{index % 10}"
        ax.plot([x for x, _ in points], [y for _, y in points], "-", color=color, label=label)
        ax.axhline(baselines[label], color=color, ls="--", lw=0.8, alpha=0.6)
    if log:
        ax.set_yscale("log")
    _labelled_to_file(plt, fig, ax, (title, "training step", ylabel), 7, out)


def _labelled_to_file(plt: Any, fig: Any, ax: Any, labels: tuple[str, str, str], legend_size: int, out: Path) -> None:
    """Title and axis labels, a grid and the legend beside the plot (the lab's many lines), then the PNG."""
    title, xlabel, ylabel = labels
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=legend_size, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def training_curves(runs: list[RunFolder], out: Path) -> None:
    """Training and validation bits per character of `runs` against steps and against wall-clock seconds, one
    colour per run: what `rnngen plot` and `rnngen runs --compare` draw."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for index, run in enumerate(runs):
        color, name, rows = f"C{index}", run.name, run.metrics()
        corpus = run.config()["corpus"]
        train = logged(rows, "train", ("step", "seconds", "loss"))
        evals = logged(rows, "eval", ("step", "val_bpc"))
        seconds_at = {row["step"]: row["seconds"] for row in train}
        # The training loss is per token, charged here over the training split's tokens and characters. A run does
        # not record that split's unknown bytes (the word tokenizer's), so the thin line charges none.
        bpc = [bits_per_character(row["loss"] * corpus["train_tokens"], 0, corpus["train_characters"]) for row in train]
        axes[0].plot([row["step"] for row in train], bpc, color=color, alpha=0.35, lw=0.8)
        axes[1].plot([row["seconds"] for row in train], bpc, color=color, alpha=0.35, lw=0.8)
        axes[0].plot(
            [row["step"] for row in evals],
            [row["val_bpc"] for row in evals],
            "o-",
            color=color,
            label=f"{name} (validation)",
        )
        axes[1].plot(
            [seconds_at.get(row["step"], math.nan) for row in evals],
            [row["val_bpc"] for row in evals],
            "o-",
            color=color,
            label=f"{name} (validation)",
        )
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training seconds")
    axes[0].set_ylabel("bits per character (thin: training)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
