"""`rnngen lab`: the lecture's limits of recurrence, measured on synthetic tasks (the library: `rnngen.lab`)."""

from __future__ import annotations

from pathlib import Path

import click

from rnngen.cli.common import Count, echo_json, require_folder_of
from rnngen.config import DEVICES, MAX_SEED
from rnngen.lab.limits import MAX_JOBS, MAX_LENGTH, MAX_SPEED_LENGTH

TRAINED_CHOICES = ("adding", "copy", "recall")
TASK_CHOICES = (*TRAINED_CHOICES, "gradients", "speed")
TITLES = {"adding": "adding problem", "copy": "copy memory", "recall": "associative recall"}


def _numbers(option: str):
    """A click callback: "50,100,200" -> (50, 100, 200), one-line error otherwise."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        try:
            return tuple(int(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not a comma-separated list of integers", param_hint=option
            ) from None

    return parse


def check_pairs(tasks: list[str], curves: bool, plot_path: Path | None) -> None:
    """Refuse an option that would do nothing without another, before any work, naming the fix."""
    from rnngen.errors import RnngenError

    if curves and plot_path is None:
        raise RnngenError("--curves draws beside the --plot picture: add --plot FILE (e.g. --plot lab.png)")
    if curves and not set(tasks) & set(TRAINED_CHOICES):
        raise RnngenError(
            f"--curves draws the learning curves of a trained task: name {', '.join(TRAINED_CHOICES)}, or drop --curves"
        )


def _plot_path(base: Path, task: str, several: bool) -> Path:
    """The picture of `task`: `base` itself for one task, `base` with the task's name before the suffix for several."""
    return base.with_name(f"{base.stem}-{task}{base.suffix}") if several else base


@click.command()
@click.argument("task", required=False, type=click.Choice(TASK_CHOICES))
@click.option(
    "--length",
    "lengths",
    callback=_numbers("--length"),
    help=(
        f"Lengths to run, comma-separated: T for adding, copy and gradients (at most {MAX_LENGTH}) and speed (at most "
        f"{MAX_SPEED_LENGTH}), pairs for recall (at most one per key). Repeats run once. [default: the preset's]"
    ),
)
@click.option(
    "--models",
    default="rnn,lstm,gru,mingru,minlstm,attention",
    show_default=True,
    help="Models, comma-separated: rnn, lstm, gru, mingru, minlstm and the attention reference.",
)
@click.option(
    "--seeds",
    default="0",
    show_default=True,
    callback=_numbers("--seeds"),
    help=f"Seeds from 0 to {MAX_SEED}, comma-separated: one run per seed, the table shows their mean.",
)
@click.option(
    "--init",
    "init",
    help=(
        "Gate initialisations to compare, comma-separated: default (PyTorch's), forget1 (a forget-gate bias of 1: "
        "Gers et al. 2000, Jozefowicz et al. 2015) and chrono (Tallec & Ollivier 2018, T_max the task's sequence "
        "length); each gated model trains once with each. [default: the task's, shown in its table]"
    ),
)
@click.option("--quick", is_flag=True, help="The quick preset: every task in under 10 minutes on a 2-core CPU.")
@click.option("--steps", type=Count(), help="Training steps per run. [default: the preset's]")
@click.option(
    "--time",
    "time_budget",
    type=float,
    help="Stop each run after this many seconds (not reproducible: the steps done depend on the machine).",
)
@click.option(
    "--curves",
    is_flag=True,
    help="With --plot, also draw each run's held-out score against its steps (FILE-curves.png).",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where to train and time (auto: CUDA, then MPS, then the CPU).",
)
@click.option(
    "--jobs",
    type=int,
    help=(
        "Runs to train at once on the CPU, each in a process of its own on one thread; a run gives the same numbers "
        f"either way. [default: one per core, at most {MAX_JOBS}]"
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print every run as JSON instead of tables.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG per task (FILE-TASK.png when several tasks run; needs matplotlib).",
)
def lab(
    task: str | None,
    lengths,
    models: str,
    seeds,
    init: str | None,
    quick: bool,
    steps: int | None,
    time_budget: float | None,
    curves: bool,
    device: str,
    jobs: int | None,
    as_json: bool,
    plot_path: Path | None,
) -> None:
    """Train the lecture's models on tasks that each probe one limit of recurrence, beside the baseline.

    \b
    rnngen lab --quick                                   # every task, under 10 minutes on a 2-core CPU
    rnngen lab copy --quick --jobs 1                     # one run at a time, in this process
    rnngen lab adding --length 50,100,200 --models rnn,lstm,gru
    rnngen lab recall --length 4,16 --seeds 0,1 --plot recall.png
    rnngen lab adding --quick --models lstm,gru --init default,forget1,chrono   # the initialisations side by side
    rnngen lab copy --quick --json > copy.json
    """
    from rnngen.cli.display import err, lab_run_line, lab_table, out, speed_table
    from rnngen.lab.experiments import LAB_TASKS, GradientReport, SpeedReport, check_options, run_lab

    tasks = [task] if task else list(LAB_TASKS)
    names = [name.strip() for name in models.split(",") if name.strip()]
    inits = None if init is None else [name.strip() for name in init.split(",") if name.strip()]
    check_pairs(tasks, curves, plot_path)
    check_options(tasks, names, lengths, seeds, steps, time_budget, inits, jobs)
    if plot_path:
        from rnngen.analysis.plot import check_image_path

        require_folder_of(plot_path, "--plot")
        check_image_path(plot_path, "--plot")
    progress = err if as_json else out

    def show(report) -> None:
        if not as_json:
            if isinstance(report, GradientReport):
                from rnngen.cli.display import gradient_sparklines, gradient_table

                marks = sorted({d for d in (0, 10, 50) if d < report.length} | {report.length - 1})
                out.print(gradient_table(report.profiles, marks))
                out.print(gradient_sparklines(report.profiles))
            elif isinstance(report, SpeedReport):
                out.print(speed_table(report))
            else:
                out.print(lab_table(report))
        if plot_path:
            path = _plot_path(plot_path, report.task, len(tasks) > 1)
            _draw(report, path)
            progress.print(f"wrote {path}")
            if curves and hasattr(report, "cells"):
                path = path.with_name(f"{path.stem}-curves{path.suffix}")
                _draw_curves(report, path)
                progress.print(f"wrote {path}")

    reports = run_lab(
        tasks,
        names,
        lengths,
        seeds,
        steps,
        time_budget,
        quick,
        on_run=lambda run: progress.print(lab_run_line(run)),
        on_report=show,
        device=device,
        init=inits,
        jobs=jobs,
    )
    if as_json:
        echo_json([report.to_dict() for report in reports], indent=1)


def _draw(report, path: Path) -> None:
    """The report's picture: a trained task's score against length, gradient reach, or time per step."""
    from rnngen.analysis.plot import gradient_curves, metric_against_length
    from rnngen.lab.experiments import GradientReport, SpeedReport

    if isinstance(report, GradientReport):
        gradient_curves(report.profiles, path)
    elif isinstance(report, SpeedReport):
        series: dict[str, list[tuple[int, float]]] = {}
        for (case, length), seconds in report.seconds.items():
            series.setdefault(case, []).append((length, seconds))
        metric_against_length(
            f"time per training step on {report.device} (batch {report.batch}, width {report.width})",
            "sequence length T",
            "seconds per step",
            series,
            None,
            path,
            log=True,
        )
    else:
        series = {}
        for cell in report.cells:
            series.setdefault(cell.label, []).append((cell.length, cell.score))
        lengths = sorted({cell.length for cell in report.cells})
        baseline = [(n, report.baseline(n)) for n in lengths]
        solved = [(n, report.solved_at(n)) for n in lengths]
        axis = "key-value pairs" if report.task == "recall" else "sequence length T"
        better = "higher" if report.metric == "accuracy" else "lower"
        title = f"{TITLES[report.task]}: {report.metric} on held-out sequences ({better} is better)"
        metric_against_length(title, axis, report.metric, series, baseline, path, report.metric != "accuracy", solved)


def _draw_curves(report, path: Path) -> None:
    """A trained task's learning curves: every run's held-out score against its steps."""
    from rnngen.analysis.plot import learning_curves

    series, baselines = {}, {}
    for cell in report.cells:
        for run in cell.runs:
            label = f"{cell.label} {'pairs' if report.task == 'recall' else 'T'}={cell.length} seed {run.config.seed}"
            series[label] = run.curve
            baselines[label] = run.baseline
    title = f"{TITLES[report.task]}: learning curves (dashed: the memoryless baseline)"
    learning_curves(title, report.metric, series, baselines, path, report.metric != "accuracy")
