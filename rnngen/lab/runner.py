"""One training function for every task of the lab: a seeded run of one model on one task at one length.

Each step draws a fresh batch from the task's generator (seeded: the same seed, the same batches); AdamW with
rnngen's two parameter groups and gradient clipping; the score is measured on a held-out set drawn from another
seed. A run ends at `steps`, at `time_budget` seconds (the only part that is not reproducible), or once it is
solved, checked every `eval_every` steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from rnngen.config import MIN_KINDS
from rnngen.lab.models import LabModel, Size
from rnngen.lab.tasks import TASKS
from rnngen.lab.verdicts import SOLVED, verdict
from rnngen.training.optim import parameter_groups

EVAL_SEED_OFFSET = 10_000  # the held-out set's seed: far from the training seeds a user passes
# minGRU and minLSTM on the CPU: the loop and the parallel scan (float64 sums, `rnngen.models.minimal`) took about the
# same time per step at 200 to 250 steps (one thread, hidden 128); below, the loop was faster: 1.8x at 30 steps,
# 1.7x at 150, 1.3x at 100 (hidden 64); at 520 steps the scan was 1.6x faster.
STEPPED_UP_TO = 200


@dataclass(frozen=True)
class RunConfig:
    """One run: a task at one length, one model kind, one seed, and how it trains."""

    task: str
    model: str
    length: int
    seed: int = 0
    steps: int = 1000
    time_budget: float | None = None
    batch_size: int = 32
    lr: float = 3e-3
    clip: float = 1.0
    size: Size = field(default_factory=Size)
    init: str = "default"  # the gate biases' start (rnngen.models.initialise), T_max the task's sequence length
    eval_every: int = 100
    eval_size: int = 256
    stop_when_solved: bool = True
    device: str = "cpu"  # "cuda" for the full preset; the data is drawn on the CPU either way, so seeds agree


@dataclass
class RunResult:
    """What a run measured: the final score on the held-out set, the baseline, the verdict and the curve."""

    config: RunConfig
    metric: str
    score: float
    baseline: float
    verdict: str
    steps: int
    seconds: float
    parameters: int
    curve: list[tuple[int, float]]  # (step, held-out score) at every evaluation

    def to_dict(self) -> dict:
        return asdict(self)


def make_task(name: str, length: int):
    """The task `name` at `length`."""
    return TASKS[name](length)


def train_run(config: RunConfig, on_eval: Callable[[int, float], None] | None = None) -> RunResult:
    """Train `config.model` on `config.task` and score it; `on_eval(step, score)` after each evaluation."""
    return train_model(config, on_eval)[0]


def stepped(device: str, steps: int) -> bool:
    """Whether minGRU and minLSTM train on sequences of `steps` by stepping their recurrence in a loop rather than by
    the parallel scan: on the CPU, up to `STEPPED_UP_TO` steps, where the loop is the faster. The two compute the
    same function, the loop in float32 and the scan's sums in float64: outputs agree to about 1e-6, and a run that
    differs by that much ends with the same verdict (the quick lab's, compared run by run), its score a little apart."""
    return device == "cpu" and steps <= STEPPED_UP_TO


def start_model(config: RunConfig, max_len: int) -> LabModel:
    """The model a run of `config` starts from, for sequences of up to `max_len` steps (chrono's T_max): its weights
    and chrono's draws seeded by `config.seed`, so the lab can rebuild a run's start beside what it trained."""
    task = make_task(config.task, config.length)
    torch.manual_seed(config.seed)
    tokens = task.name != "adding"
    model = LabModel(config.model, task.inputs, task.outputs, config.size, tokens, max_len=max_len, init=config.init)
    if config.model in MIN_KINDS:
        model.rnn.sequential = stepped(config.device, max_len)
    return model


def train_model(config: RunConfig, on_eval: Callable[[int, float], None] | None = None) -> tuple[RunResult, LabModel]:
    """`train_run`, also returning the trained model (on the CPU, in eval mode): the lab measures its gradients."""
    task = make_task(config.task, config.length)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    held_out = task.sample(config.eval_size, torch.Generator().manual_seed(config.seed + EVAL_SEED_OFFSET))
    held_out = tuple(tensor.to(device) for tensor in held_out)
    model = start_model(config, max_len=held_out[0].size(1)).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.0), lr=config.lr)
    curve: list[tuple[int, float]] = []

    def evaluate(step: int) -> float:
        model.eval()
        with torch.no_grad():
            score = task.score(model(held_out[0]), held_out[1])
        model.train()
        curve.append((step, score))
        if on_eval:
            on_eval(step, score)
        return score

    started, step = time.perf_counter(), 0
    score = evaluate(0)
    while step < config.steps:
        inputs, targets = (tensor.to(device) for tensor in task.sample(config.batch_size, generator))
        loss = task.loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        step += 1
        out_of_time = config.time_budget is not None and time.perf_counter() - started >= config.time_budget
        if step % config.eval_every == 0 or step == config.steps or out_of_time:
            score = evaluate(step)
            if out_of_time or (config.stop_when_solved and verdict(task, score) == SOLVED):
                break
    if curve[-1][0] != step:
        score = evaluate(step)
    return RunResult(
        config=config,
        metric=task.metric,
        score=score,
        baseline=task.baseline,
        verdict=verdict(task, score, [curve]),
        steps=step,
        seconds=time.perf_counter() - started,
        parameters=model.parameter_count,
        curve=curve,
    ), model.cpu().eval()
