"""The lab's experiments: a task x models x lengths x seeds, run through `train_run`, summed up per cell.

`run_lab` is the library call behind `rnngen lab` (a notebook can run it too): it runs the trained tasks
(adding, copy, recall) and the measured ones (gradient reach, time per step) and returns typed reports; the
command line only renders them. `QUICK` and `FULL` hold each task's lengths and budget: the quick form is sized
to finish every task in under 10 minutes on a 2-core CPU, the full form is meant for a GPU. On the CPU the runs
train side by side, each in a worker process of its own on one thread (`train_each`): each seeds its own data and
weights, so a run gives the same numbers alone or beside others.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from statistics import mean

import torch

from rnngen.config import MAX_SEED
from rnngen.errors import RnngenError, param
from rnngen.lab.limits import MAX_JOBS, MAX_LENGTH, MAX_SPEED_LENGTH
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
    jobs: int | None = None,
) -> None:
    """Refuse what cannot run, or what would be ignored, before any work or memory is taken, naming the parameter."""
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
    if jobs is not None and jobs < 1:
        raise RnngenError(f"{param('jobs')} must be at least 1, got {jobs}")
    if set(tasks) == {SPEED}:
        ignored = [name for name, value in (("init", init), ("time_budget", time_budget)) if value is not None]
        ignored += ["jobs"] if jobs is not None and jobs > 1 else []
        if ignored:
            raise RnngenError(
                f"{param(ignored[0])} sets how runs train; speed times fixed models, one at a time: drop "
                f"{param(ignored[0])}, or name a trained task ({', '.join(TRAINED)})"
            )


def distinct(values: Sequence) -> tuple:
    """`values` without repeats, in their order: a repeated length, model or seed would train the same runs again."""
    return tuple(dict.fromkeys(values))


def model_inits(model: str, inits: Sequence[str]) -> tuple[str, ...]:
    """The initialisations `model` runs with: each of `inits` that changes it (the RNN has no gate to set)."""
    return distinct([applies(model, init) for init in inits])


def plan_cells(
    task: str,
    models: Sequence[str],
    preset: Preset,
    seeds: Sequence[int],
    time_budget: float | None,
    device: str,
    inits: Sequence[str] | None = None,
) -> list[tuple[Cell, list[RunConfig]]]:
    """A cell for every model with every initialisation (`inits`, by default the preset's) at every length of
    `preset`, each with its runs' configurations, one per seed, in the seeds' order."""
    plans = []
    for length in preset.lengths:
        for model in models:
            for init in model_inits(model, inits or (preset.init,)):
                configs = [
                    RunConfig(
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
                    for seed in seeds
                ]
                plans.append((Cell(model, length, [], init), configs))
    return plans


def default_jobs() -> int:
    """How many runs train at once on the CPU unless told: one per core this process may use, at most `MAX_JOBS`.
    Every core, not only the free ones: one-thread processes do not wait for each other, so a core another process
    takes slows only the run on it (where two threads of one run would both wait; see `one_thread`)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


def start_worker() -> None:
    """A worker process's start: one thread, as the lab's runs have in this process, and Ctrl-C left to the parent,
    which ends its workers itself (`workers`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_one_thread()


@contextlib.contextmanager
def workers(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """`jobs` worker processes, started fresh (spawned: a fork of a process that has run PyTorch's threads may hang).
    When the block fails or is interrupted (Ctrl-C, SIGTERM), they are ended at once, not left to finish their runs."""
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker)
    try:
        yield pool
    except BaseException:
        for process in list((pool._processes or {}).values()):  # no public way to end them before Python 3.14
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def train_each(configs: Sequence[RunConfig], jobs: int) -> Iterator[tuple[int, tuple[RunResult, LabModel]]]:
    """Train every one of `configs` and yield (its index, `train_model`'s result) as each run ends: in this process
    with one job, else `jobs` at a time in worker processes of one thread each. Processes, because threads of one
    process share PyTorch's global seed, which each run sets (two threads gave a run other numbers); and one thread
    each: on 2 cores, two runs of 5 s alone took 5.2 and 6.0 s side by side in two processes (docs/lab.md)."""
    if jobs == 1 or len(configs) < 2:
        for index, config in enumerate(configs):
            yield index, train_model(config)
        return
    with workers(min(jobs, len(configs))) as pool:
        futures = {pool.submit(train_model, config): index for index, config in enumerate(configs)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BrokenProcessPool:
            raise RnngenError(
                f"a worker process of the lab ended abruptly (out of memory?): train fewer runs at once with "
                f"{param('jobs')} 1"
            ) from None


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


def use_one_thread() -> None:
    """Train on one CPU thread, unless OMP_NUM_THREADS says otherwise. The lab's models are small, so a second
    thread gains little, and it loses much when another process takes the other core mid-run: measured on 2 cores, a
    GRU run that took 22 s on one thread took 203 s on two once another process started."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """`use_one_thread` inside the block; the thread count is restored after it."""
    threads = torch.get_num_threads()
    use_one_thread()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


Plans = dict[str, list[tuple[Cell, list[RunConfig]]]]  # task -> its cells, each with its runs' configurations


class Runs:
    """Every training run of a lab call, handed out at the start (`train_each`), so that a task's last run trains
    beside the next task's first; a task's cells are filled once its own runs have ended. `close` ends the workers."""

    def __init__(self, plans: Plans, jobs: int, on_run: Callable[[RunResult], None] | None):
        self.plans, self.on_run = plans, on_run
        self.owners = [(task, cell) for task, plan in plans.items() for cell, configs in plan for _ in configs]
        configs = [config for plan in plans.values() for _, configs in plan for config in configs]
        self.pending = train_each(configs, jobs)
        self.ended: dict[int, tuple[RunResult, LabModel]] = {}
        self.filled: set[str] = set()

    def record(self, index: int, result: tuple[RunResult, LabModel]) -> None:
        self.ended[index] = result
        if self.on_run:
            self.on_run(result[0])

    def cells(self, task: str) -> list[Cell]:
        """`task`'s cells, each holding its runs and trained models in the seeds' order, once all have ended."""
        mine = [index for index, (owner, _) in enumerate(self.owners) if owner == task]
        while not all(index in self.ended for index in mine):
            self.record(*next(self.pending))
        if task not in self.filled:
            self.filled.add(task)
            for index in mine:
                run, trained = self.ended[index]
                self.owners[index][1].runs.append(run)
                self.owners[index][1].trained.append(trained)
        return [cell for cell, _ in self.plans[task]]

    def finish(self) -> None:
        """Wait for every run; the workers end with the last."""
        for index, result in self.pending:
            self.record(index, result)

    def close(self) -> None:
        self.pending.close()


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
    jobs: int | None = 1,
) -> list:
    """Run the lab's `tasks` and return one report per task (`TaskReport`, `GradientReport` or `SpeedReport`).

    `lengths` and `steps` replace the preset's (`QUICK` with `quick`, else `FULL`); `time_budget` caps each run
    in seconds; `on_run` sees every training run as it ends and `on_report` every task's report, in the tasks' order.
    `device` is "cpu", "cuda", "mps" or "auto" (`rnngen.models.device.pick`); gradient reach runs on the CPU.
    `init` names gate initialisations to compare (`rnngen.models.initialise.INITS`): each gated model trains once
    with each; by default every task uses its preset's. Gradient reach measures the models the adding task trained
    in the same call, or trains them itself (as the adding task would, at its length).
    `jobs` runs train at once on the CPU, each in a worker process of its own (None: `default_jobs()`); in a script,
    more than one needs the `if __name__ == "__main__":` guard, as any spawned process does. The time per step
    (`speed`) is measured once every run has ended, alone.
    """
    tasks, models, seeds = distinct(tasks), distinct(models), distinct(seeds)
    lengths = None if lengths is None else distinct(lengths)
    init = None if init is None else distinct(init)
    check_options(tasks, models, lengths, seeds, steps, time_budget, init, jobs)
    presets = QUICK if quick else FULL
    device = str(pick(device))
    if jobs is None:
        jobs = default_jobs() if device == "cpu" else 1
    elif jobs > 1 and device != "cpu":
        raise RnngenError(
            f"{param('jobs')} trains runs side by side on the CPU; on {device} they train one at a time: drop "
            f"{param('jobs')} or choose {param('device')} cpu"
        )
    chosen = {
        task: replace(
            presets[task], lengths=tuple(lengths or presets[task].lengths), steps=steps or presets[task].steps
        )
        for task in tasks
    }
    recurrent = [model for model in models if model in RECURRENT]
    plans: Plans = {
        task: plan_cells(task, models, chosen[task], seeds, time_budget, device, init)
        for task in tasks
        if task in TRAINED
    }
    if GRADIENTS in tasks and recurrent and "adding" not in tasks:
        at_length = replace(
            presets["adding"], lengths=chosen[GRADIENTS].lengths[-1:], steps=steps or presets["adding"].steps
        )
        plans[GRADIENTS] = plan_cells("adding", recurrent, at_length, seeds[:1], time_budget, device, init)
    reports = []
    with one_thread(), contextlib.closing(Runs(plans, jobs, on_run)) as runs:
        for task in tasks:
            preset = chosen[task]
            if task == GRADIENTS and not recurrent:
                continue  # attention alone: no recurrence to measure
            if task == GRADIENTS:
                cells = runs.cells("adding" if "adding" in plans else GRADIENTS)
                report = gradient_reach(cells, preset.lengths[-1], seeds[0])
            elif task == SPEED:
                runs.finish()  # timed alone, with no run training beside it
                report = speed(preset.lengths, preset.steps, device=device)
            else:
                report = TaskReport(task, make_task(task, preset.lengths[0]).metric, runs.cells(task))
            reports.append(report)
            if on_report:
                on_report(report)
        runs.finish()
    return reports
