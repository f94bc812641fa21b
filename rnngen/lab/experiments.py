"""The lab's experiments: a task x models x lengths x seeds, run through `train_run`, summed up per cell.

`run_lab` is the library call behind `rnngen lab` (a notebook can run it too): it runs the trained tasks
(adding, copy, recall) and the measured ones (gradient reach, time per step) and returns typed reports; the
command line only renders them. `QUICK` and `FULL` hold each task's lengths and budget: the quick form is sized
to finish every task in under 10 minutes on a 2-core CPU, the full form is meant for a GPU.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from statistics import mean

import torch

from rnngen.config import MAX_SEED
from rnngen.errors import RnngenError, param
from rnngen.lab.limits import MAX_LENGTH, MAX_SPEED_LENGTH
from rnngen.lab.models import ATTENTION, LAB_MODELS, LabModel, Size
from rnngen.lab.runner import RunConfig, RunResult, make_task, start_model, train_model
from rnngen.lab.speed import CASES, step_seconds
from rnngen.lab.tasks import TASKS, Adding, Recall
from rnngen.lab.verdicts import solved_at, verdict
from rnngen.models.device import pick
from rnngen.models.initialise import applies, check_init

TRAINED = tuple(TASKS)  # adding, copy, recall
GRADIENTS, SPEED = "gradients", "speed"
LAB_TASKS = (*TRAINED, GRADIENTS, SPEED)
RECURRENT = tuple(model for model in LAB_MODELS if model != "attention")


@dataclass(frozen=True)
class Preset:
    """A task's default lengths, budget (`steps`, learning rate, batch, model size) and the gate initialisation its
    gated models start with (`rnngen.models.initialise`; chrono's T_max is the task's sequence length)."""

    lengths: tuple[int, ...]
    steps: int
    lr: float = 3e-3
    batch_size: int = 32
    size: Size = field(default_factory=Size)
    init: str = "chrono"
    attention_lr: float | None = None  # the attention reference's own, where the recurrent models' is too high for it

    def lr_of(self, model: str) -> float:
        """The learning rate `model` trains with: each model at one that works for it, as Zoology tunes per model."""
        return self.attention_lr if model == ATTENTION and self.attention_lr else self.lr


# The quick budgets are the smallest that let the gated models solve what the papers show them solving, chosen from
# the runs in docs/lab.md ("Choosing the quick budget"): hence 1e-2, copy's 128 units and recall's attention at 1e-3.
QUICK = {
    "adding": Preset(lengths=(10, 100), steps=600, lr=1e-2),
    "copy": Preset(lengths=(10, 20), steps=1800, lr=1e-2, size=Size(hidden=128)),
    "recall": Preset(lengths=(1, 2, 4), steps=2400, lr=1e-2, batch_size=64, attention_lr=1e-3),
    GRADIENTS: Preset(lengths=(100,), steps=0),
    SPEED: Preset(lengths=(64, 256), steps=2),
}
FULL = {
    "adding": Preset(lengths=(100, 200, 400, 600), steps=5000, lr=1e-2),
    "copy": Preset(lengths=(50, 100, 200, 500), steps=5000, lr=1e-2, size=Size(hidden=128)),
    "recall": Preset(lengths=(4, 8, 16, 32, 64), steps=5000, lr=1e-2, batch_size=64, attention_lr=1e-3),
    GRADIENTS: Preset(lengths=(200,), steps=0),
    SPEED: Preset(lengths=(64, 256, 1024, 4096), steps=3),
}


@dataclass
class Cell:
    """One model with one initialisation at one length: its runs (one per seed), their trained models and summary."""

    model: str
    length: int
    runs: list[RunResult]
    init: str = "default"
    trained: list[LabModel] = field(default_factory=list, repr=False)  # each run's trained model, in the runs' order

    @property
    def label(self) -> str:
        """The model and, where it is not PyTorch's, its initialisation: "lstm chrono"."""
        return self.model if self.init == "default" else f"{self.model} {self.init}"

    @property
    def score(self) -> float:
        """The mean score over the seeds."""
        return mean(run.score for run in self.runs)

    @property
    def steps(self) -> int:
        return round(mean(run.steps for run in self.runs))


@dataclass
class TaskReport:
    """A trained task's results: a cell per model and length, the baselines, the verdicts."""

    task: str
    metric: str
    cells: list[Cell]

    def baseline(self, length: int) -> float:
        return make_task(self.task, length).baseline

    def solved_at(self, length: int) -> float:
        return solved_at(self.metric, self.baseline(length))

    def verdict(self, cell: Cell) -> str:
        return verdict(make_task(self.task, cell.length), cell.score, [run.curve for run in cell.runs])

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "runs": [run.to_dict() for c in self.cells for run in c.runs]}


@dataclass
class GradientReport:
    """`rnngen.analysis.gradients` profiles of the recurrent models on one adding-problem sequence, fresh and as the
    adding task trained them."""

    length: int
    profiles: list

    task = GRADIENTS

    def to_dict(self) -> dict:
        return {
            "task": GRADIENTS,
            "length": self.length,
            "profiles": [
                {
                    "model": p.label,
                    "loss_grad": p.loss_grad,
                    "jacobian": p.jacobian,
                    "vanish_distance": p.vanish_distance,
                }
                for p in self.profiles
            ],
        }


@dataclass
class SpeedReport:
    """Seconds per training step: (case, length) -> seconds."""

    seconds: dict[tuple[str, int], float]
    width: int
    batch: int
    device: str = "cpu"

    task = SPEED

    def to_dict(self) -> dict:
        return {
            "task": SPEED,
            "width": self.width,
            "batch": self.batch,
            "device": self.device,
            "runs": [{"case": c, "length": n, "seconds_per_step": s} for (c, n), s in self.seconds.items()],
        }


def max_length(task: str) -> int:
    """The longest `lengths` `task` takes: recall's pairs, one per key; speed's steps; the other tasks' steps."""
    if task == "recall":
        return Recall(1).keys
    return MAX_SPEED_LENGTH if task == SPEED else MAX_LENGTH


def check_options(
    tasks: Sequence[str],
    models: Sequence[str],
    lengths: Sequence[int] | None,
    seeds: Sequence[int],
    steps: int | None,
    time_budget: float | None,
    init: Sequence[str] | None = None,
) -> None:
    """Refuse what cannot run, before any work or memory is taken, naming the parameter."""
    if init is not None:
        if not init:
            raise RnngenError(f"{param('init')}: give at least one initialisation")
        for name in init:
            check_init(name)
    unknown = [task for task in tasks if task not in LAB_TASKS]
    if unknown or not tasks:
        raise RnngenError(f"unknown task {', '.join(unknown) or 'none'}: choose among {', '.join(LAB_TASKS)}")
    if not models:
        raise RnngenError(f"{param('models')}: give at least one model among {', '.join(LAB_MODELS)}")
    unknown = [model for model in models if model not in LAB_MODELS]
    if unknown:
        raise RnngenError(f"{param('models')}: unknown {', '.join(unknown)}: choose among {', '.join(LAB_MODELS)}")
    if lengths is not None:
        if not lengths:
            raise RnngenError(f"{param('lengths')}: give at least one length")
        if min(lengths) < 1:
            raise RnngenError(f"{param('lengths')} must be at least 1, got {min(lengths)}")
        if "adding" in tasks and min(lengths) < 2:
            raise RnngenError(f"the adding problem needs {param('lengths')} of at least 2 (a marker in each half)")
        tightest = min(tasks, key=max_length)
        if max(lengths) > max_length(tightest):
            unit = " pairs (one per key)" if tightest == "recall" else ""
            raise RnngenError(
                f"{tightest} takes {param('lengths')} of at most {max_length(tightest)}{unit}, got {max(lengths)}"
            )
    if set(tasks) == {GRADIENTS} and not set(models) & set(RECURRENT):
        raise RnngenError(f"gradient reach is measured on recurrent models: add one to {param('models')}")
    if not seeds:
        raise RnngenError(f"{param('seeds')}: give at least one seed")
    bad = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
    if bad:
        raise RnngenError(f"{param('seeds')} must be from 0 to {MAX_SEED}, got {bad[0]}")
    if steps is not None and steps < 1:
        raise RnngenError(f"{param('steps')} must be at least 1, got {steps}")
    if time_budget is not None and not (0 < time_budget < math.inf):
        raise RnngenError(f"{param('time_budget')} must be a positive number of seconds, got {time_budget}")


def distinct(values: Sequence) -> tuple:
    """`values` without repeats, in their order: a repeated length, model or seed would train the same runs again."""
    return tuple(dict.fromkeys(values))


def model_inits(model: str, inits: Sequence[str]) -> tuple[str, ...]:
    """The initialisations `model` runs with: each of `inits` that changes it (the RNN has no gate to set)."""
    return distinct([applies(model, init) for init in inits])


def run_trained(
    task: str,
    models: Sequence[str],
    preset: Preset,
    seeds: Sequence[int],
    time_budget: float | None,
    on_run: Callable[[RunResult], None] | None = None,
    device: str = "cpu",
    inits: Sequence[str] | None = None,
) -> TaskReport:
    """Train every model with every initialisation (`inits`, by default the preset's) at every length of `preset`
    with every seed."""
    cells = []
    for length in preset.lengths:
        for model in models:
            for init in model_inits(model, inits or (preset.init,)):
                cell = Cell(model, length, [], init)
                for seed in seeds:
                    config = RunConfig(
                        task,
                        model,
                        length,
                        seed=seed,
                        steps=preset.steps,
                        time_budget=time_budget,
                        batch_size=preset.batch_size,
                        lr=preset.lr_of(model),
                        size=preset.size,
                        init=init,
                        device=device,
                    )
                    run, trained = train_model(config)
                    cell.runs.append(run)
                    cell.trained.append(trained)
                    if on_run:
                        on_run(run)
                cells.append(cell)
    return TaskReport(task, make_task(task, preset.lengths[0]).metric, cells)


def gradient_reach(cells: Sequence[Cell], length: int, seed: int) -> GradientReport:
    """||dL_T/dh_t|| against T - t on one adding-problem sequence of `length` steps, for the recurrent models of the
    adding task's `cells` at that length: each fresh (built as its run started: same seed, size and initialisation)
    and as its first seed's run left it. The loss is the adding problem's own, the squared error at the last step."""
    from rnngen.analysis.gradients import profile

    task = Adding(length)
    inputs, target = task.sample(1, torch.Generator().manual_seed(seed))
    window = torch.cat([inputs[0], inputs[0, -1:]])  # profile takes L + 1 rows and reads the first L

    def loss(last_output: torch.Tensor) -> torch.Tensor:
        return task.loss(last_output[:, None], target)

    profiles = []
    for cell in cells:
        if cell.model in RECURRENT and cell.length == length:
            fresh = start_model(cell.runs[0].config, max_len=length)
            profiles.append(profile(fresh, window, f"{cell.label} fresh", seed=seed, loss=loss))
            profiles.append(profile(cell.trained[0], window, f"{cell.label} trained", seed=seed, loss=loss))
    return GradientReport(length, profiles)


def speed(lengths: Sequence[int], steps: int, width: int = 64, batch: int = 8, device: str = "cpu") -> SpeedReport:
    """Seconds per training step of every computation in `CASES` over `lengths` (one model kind each: the
    comparison is of how the steps are computed, so it does not follow the chosen models)."""
    seconds = {(case, n): step_seconds(case, n, steps, batch, width, device) for n in lengths for case in CASES}
    return SpeedReport(seconds, width, batch, device)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread (unless OMP_NUM_THREADS says otherwise), restored after. The lab's models are small, so
    a second thread gains little, and it loses much when another process takes the other core mid-run: measured on
    2 cores, a GRU run that took 22 s on one thread took 203 s on two once another process started."""
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_lab(
    tasks: Sequence[str] = LAB_TASKS,
    models: Sequence[str] = LAB_MODELS,
    lengths: Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    time_budget: float | None = None,
    quick: bool = False,
    on_run: Callable[[RunResult], None] | None = None,
    on_report: Callable[[object], None] | None = None,
    device: str = "cpu",
    init: Sequence[str] | None = None,
) -> list:
    """Run the lab's `tasks` and return one report per task (`TaskReport`, `GradientReport` or `SpeedReport`).

    `lengths` and `steps` replace the preset's (`QUICK` with `quick`, else `FULL`); `time_budget` caps each run
    in seconds; `on_run` sees every training run as it ends and `on_report` every task's report.
    `device` is "cpu", "cuda", "mps" or "auto" (`rnngen.models.device.pick`); gradient reach runs on the CPU.
    `init` names gate initialisations to compare (`rnngen.models.initialise.INITS`): each gated model trains once
    with each; by default every task uses its preset's. Gradient reach measures the models the adding task trained
    in the same call, or trains them itself (as the adding task would, at its length).
    """
    tasks, models, seeds = distinct(tasks), distinct(models), distinct(seeds)
    lengths = None if lengths is None else distinct(lengths)
    init = None if init is None else distinct(init)
    check_options(tasks, models, lengths, seeds, steps, time_budget, init)
    presets = QUICK if quick else FULL
    device = str(pick(device))
    reports = []
    with one_thread():
        for task in tasks:
            preset = presets[task]
            preset = replace(preset, lengths=tuple(lengths or preset.lengths), steps=steps or preset.steps)
            if task == GRADIENTS and not set(models) & set(RECURRENT):
                continue  # attention alone: no recurrence to measure
            if task == GRADIENTS:
                length = preset.lengths[-1]
                adding = next((r for r in reports if r.task == "adding"), None)
                if adding is None:
                    at_length = replace(presets["adding"], lengths=(length,), steps=steps or presets["adding"].steps)
                    recurrent = [model for model in models if model in RECURRENT]
                    adding = run_trained("adding", recurrent, at_length, seeds[:1], time_budget, on_run, device, init)
                report = gradient_reach(adding.cells, length, seeds[0])
            elif task == SPEED:
                report = speed(preset.lengths, preset.steps, device=device)
            else:
                report = run_trained(task, models, preset, seeds, time_budget, on_run, device, init)
            reports.append(report)
            if on_report:
                on_report(report)
    return reports
