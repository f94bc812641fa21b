"""What training reports, as typed events: the CLI renders them and metrics.jsonl stores them.

`Logged`, `Evaluated` and `Sampled` are the rows of metrics.jsonl (`to_dict()`, keyed by `"event"`:
"train", "eval" or "sample"); `rnngen runs` and `rnngen plot` read those rows back. The other events are shown, not
stored. This module needs no torch, so readers of metrics files stay light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Started:
    """Training begins (or resumes at `step`)."""

    run: str
    device: str
    arithmetic: str  # what the run computes in and why (rnngen.models.precision.Arithmetic.line)
    step: int
    parameters: int
    processes: int
    rows: int  # the global batch: rows of all processes together
    train_tokens: int
    tokens_per_step: int
    steps: int | None  # the budget: steps, seconds of training, or both (whichever comes first)
    time_budget: float | None


@dataclass(frozen=True)
class Preparing:
    """The embedded corpus is being prepared for the run: `stage` ("load", "tokenizer", "encode", "write") has
    reached `done` of `total` (None while unknown)."""

    stage: str
    done: int
    total: int | None


@dataclass(frozen=True)
class Prepared:
    """The embedded corpus was prepared for the run; `meta` is its meta.json."""

    meta: dict[str, Any]


@dataclass(frozen=True)
class Notice:
    """A line the user should read before training starts, such as what a resume cannot restore."""

    text: str


@dataclass(frozen=True)
class Sized:
    """A new run chose its model's shape for its time budget (`rnngen.training.sizing`): `line` says which and
    why, `sizing` is the record config.json keeps."""

    line: str
    sizing: dict[str, Any]


@dataclass(frozen=True)
class Logged:
    """The mean figures of one log interval; `progress` (share of the budget spent) is shown, not stored."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    clipped: float  # the share of steps whose gradient norm was clipped
    tokens_per_s: float
    seconds: float
    epoch: float
    progress: float

    def to_dict(self) -> dict[str, Any]:
        """The metrics.jsonl row."""
        row = {"event": "train", **dataclasses.asdict(self)}
        del row["progress"]
        return row


@dataclass(frozen=True)
class Evaluated:
    """Validation figures at `step` (`bounded`: only the first `val_tokens` predictions were read)."""

    step: int
    val_loss: float
    val_ppl: float
    val_bpc: float
    val_tokens: int
    bounded: bool

    def to_dict(self) -> dict[str, Any]:
        """The metrics.jsonl row."""
        return {"event": "eval", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Sampled:
    """A completion of the run's fixed prompt at `step`, drawn right after the evaluation."""

    step: int
    prompt: str
    text: str  # the completion alone, without the prompt

    def to_dict(self) -> dict[str, Any]:
        """The metrics.jsonl row."""
        return {"event": "sample", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Saved:
    """A checkpoint was written: `last`, and `best` too when validation improved."""

    step: int
    best: bool
    path: str


@dataclass(frozen=True)
class Finished:
    """The run's summary: totals, the best validation figures and the last evaluation."""

    run: str
    steps: int
    seconds: float
    processes: int
    tokens: int
    tokens_per_s: float
    best_val_loss: float
    best_val_bpc: float | None
    last_eval: Evaluated | None  # None on the ranks that do not evaluate
    last_sample: Sampled | None = None  # None with --no-samples, and on the ranks that do not sample
    stopped: str | None = None  # why the run stopped before its budget was spent (--patience)

    def to_dict(self) -> dict[str, Any]:
        """The summary as one flat dict (what `Trainer.fit` returns); `sample_prompt` and `sample` are the last
        sample."""
        totals = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("last_eval", "last_sample")
        }
        sample = {"sample_prompt": self.last_sample.prompt, "sample": self.last_sample.text} if self.last_sample else {}
        return {**totals, **(dataclasses.asdict(self.last_eval) if self.last_eval else {}), **sample}


METRICS_ROWS = (Logged, Evaluated, Sampled)  # the events stored in metrics.jsonl
Event = Preparing | Prepared | Notice | Started | Logged | Evaluated | Sampled | Saved | Finished
EventFn = Callable[[Event], None]
