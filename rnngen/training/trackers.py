"""Experiment trackers (`report_to`): TensorBoard and Weights & Biases, as listeners on the training events.

A tracker receives the same typed events as the display and metrics.jsonl and writes their figures where people
already watch runs: training loss, validation loss, bits per character, perplexity, learning rate, gradient norm,
clipped share, tokens/s and epoch as scalars at their steps, each evaluation's sample as text, and the run's
configuration as hyperparameters with the final figures. Only rank 0 tracks. A resumed run continues the same
curves: TensorBoard purges the steps after the resume point, W&B resumes the run whose id the run folder keeps.
Both packages are optional extras; a tracker that fails mid-run is reported once and dropped, the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rnngen.errors import RnngenError, param
from rnngen.store.atomic import write_atomic
from rnngen.store.runs import RunFolder
from rnngen.training.events import Evaluated, Event, EventFn, Finished, Logged, Notice, Sampled, Started

TRACKERS = ("tensorboard", "wandb")
WANDB_ID_FILE = "wandb-id.txt"  # the W&B run this run folder reports to, so that a resume continues it


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The trackers named by `value`: "none", one name, a comma-separated list, or a sequence of names."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    chosen = [name.strip().lower() for name in names if name.strip()]
    if "none" in chosen:
        if set(chosen) == {"none"}:
            return ()
        raise RnngenError(
            f"{param('report_to')} none turns every tracker off: give it alone, or name only trackers "
            f"({', '.join(TRACKERS)})"
        )
    unknown = [name for name in chosen if name not in TRACKERS]
    if unknown:
        raise RnngenError(
            f"unknown {param('report_to')} {unknown[0]!r}: choose none, {', '.join(TRACKERS)} or a comma-separated list"
        )
    return tuple(dict.fromkeys(chosen))


def require(names: Sequence[str]) -> None:
    """Refuse, before any work, a tracker whose package is missing: one line naming the extra to install."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise RnngenError(f'{param("report_to")} {name} needs the {name} package: pip install "rnngen[{name}]"')


def hyperparameters(model: Any, train: Any, corpus: str) -> dict[str, Any]:
    """The run's configuration, flat (`model.hidden`, `train.lr`), as trackers take it."""
    flat: dict[str, Any] = {"corpus": corpus}
    for section, config in (("model", model), ("train", train)):
        for key, value in dataclasses.asdict(config).items():
            flat[f"{section}.{key}"] = value
    return flat


def train_figures(event: Logged) -> dict[str, float]:
    """The scalars of a log interval."""
    return {
        "train/loss": event.loss,
        "train/lr": event.lr,
        "train/grad_norm": event.grad_norm,
        "train/clipped": event.clipped,
        "train/tokens_per_s": event.tokens_per_s,
        "train/epoch": event.epoch,
    }


def eval_figures(event: Evaluated) -> dict[str, float]:
    """The scalars of an evaluation."""
    return {"val/loss": event.val_loss, "val/bpc": event.val_bpc, "val/ppl": event.val_ppl}


def final_figures(event: Finished) -> dict[str, float]:
    """The run's summary figures (the hyperparameters' metrics), those that are known."""
    figures = {
        "final/steps": event.steps,
        "final/seconds": event.seconds,
        "final/tokens_per_s": event.tokens_per_s,
        "final/best_val_loss": event.best_val_loss,
        "final/best_val_bpc": event.best_val_bpc,
    }
    return {key: float(value) for key, value in figures.items() if value is not None}


class TensorBoard:
    """Writes event files under `log_dir` (`checkpoints/RUN/tensorboard/` by default)."""

    def __init__(self, log_dir: Path, config: dict[str, Any]):
        self.log_dir, self.config = log_dir, config
        self.writer: Any = None

    def start(self) -> None:
        """Nothing to do before training: the writer opens at `Started`, which gives the step a resume starts at."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Started):
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run: TensorBoard drops what an earlier process wrote after the checkpoint it resumes from.
            self.writer = SummaryWriter(str(self.log_dir), purge_step=event.step + 1 if event.step else None)
        elif self.writer is None:
            return
        elif isinstance(event, Logged):
            self._scalars(train_figures(event), event.step)
        elif isinstance(event, Evaluated):
            self._scalars(eval_figures(event), event.step)
        elif isinstance(event, Sampled):
            # Markdown: the prompt plain, the model's completion in bold.
            self.writer.add_text("sample", f"{event.prompt}**{event.text}**", event.step)
        elif isinstance(event, Finished):
            self._hparams(final_figures(event), event.steps)
        if isinstance(event, (Logged, Evaluated, Sampled)):
            self.writer.flush()

    def _scalars(self, figures: dict[str, float], step: int) -> None:
        for tag, value in figures.items():
            self.writer.add_scalar(tag, value, step)

    def _hparams(self, metrics: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        # In the run's own event file (SummaryWriter.add_hparams would open a second run beside it).
        hparam_dict = {
            key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in self.config.items()
        }
        for summary in hparams(hparam_dict, metrics):
            self.writer.file_writer.add_summary(summary)
        self._scalars(metrics, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandB:
    """Logs to Weights & Biases, configured by its own environment (`WANDB_PROJECT`, `WANDB_MODE=offline`, ...).

    The run id is kept in the run folder, so that a resumed run reports to the same W&B run; its files go to the
    run folder unless `WANDB_DIR` says otherwise."""

    def __init__(self, run: RunFolder, config: dict[str, Any]):
        self.run, self.config = run, config
        self.wandb_run: Any = None

    def __call__(self, event: Event) -> None:
        if self.wandb_run is None:
            return
        if isinstance(event, Logged):
            self.wandb_run.log(train_figures(event), step=event.step)
        elif isinstance(event, Evaluated):
            self.wandb_run.log(eval_figures(event), step=event.step)
        elif isinstance(event, Sampled):
            self.wandb_run.log({"sample": event.prompt + event.text}, step=event.step)
        elif isinstance(event, Finished):
            self.wandb_run.summary.update(final_figures(event))

    def start(self) -> None:
        """Open the W&B run before training, so that its start (seconds, some of it) is not counted in the budget."""
        import wandb

        id_file = self.run.file(WANDB_ID_FILE)
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        write_atomic(id_file, (run_id + "\n").encode())
        self.wandb_run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "rnngen"),
            name=self.run.name,
            id=run_id,
            resume="allow",
            config=self.config,
            dir=os.environ.get("WANDB_DIR") or str(self.run.path),
        )

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()


class Tracking:
    """The trackers as one listener: each gets every event; one that raises is reported once, then dropped."""

    def __init__(self, trackers: dict[str, Any], report: EventFn):
        self.trackers, self.report = dict(trackers), report

    def start(self) -> None:
        for name, tracker in list(self.trackers.items()):
            self._guarded(name, tracker, tracker.start)

    def __call__(self, event: Event) -> None:
        for name, tracker in list(self.trackers.items()):
            self._guarded(name, tracker, functools.partial(tracker, event))

    def close(self) -> None:
        for name, tracker in list(self.trackers.items()):
            self._guarded(name, tracker, tracker.close, closing=True)

    def _guarded(self, name: str, tracker: Any, call: Callable[[], None], closing: bool = False) -> None:
        try:
            call()
        except Exception as exc:  # losing the figures must never lose the run
            self.trackers.pop(name, None)
            self.report(Notice(f"{name} stopped reporting ({type(exc).__name__}: {exc}); training goes on"))
            if not closing:  # free what it holds (a writer thread, W&B's process), whatever state it is in
                with contextlib.suppress(Exception):
                    tracker.close()


def make(name: str, run: RunFolder, config: dict[str, Any]) -> Any:
    """The tracker called `name` for `run`."""
    if name == "tensorboard":
        return TensorBoard(run.file("tensorboard"), config)
    return WandB(run, config)


@contextlib.contextmanager
def tracked(trackers: dict[str, Any], on_event: EventFn | None) -> Iterator[EventFn | None]:
    """`on_event` with the trackers listening beside it; they are closed when training ends, however it ends."""
    if not trackers:
        yield on_event
        return
    report = on_event or (lambda event: None)
    tracking = Tracking(trackers, report)
    tracking.start()

    def both(event: Event) -> None:
        tracking(event)
        report(event)

    try:
        yield both
    finally:
        tracking.close()
