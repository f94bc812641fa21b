"""What a training call will do, decided before anything trains: a new run, a resumed run or a fine-tune.

These are the rules of `rnngen.train` (and so of `rnngen train`): which values a preset gives and
an override replaces, which values a resumed run may change, how a fine-tune takes its model from a
checkpoint, and how a new run is named.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnngen.config import ModelConfig, Preset, TrainConfig
from rnngen.data.reading import Corpus, corpus_of, same_data
from rnngen.data.tokenizer import utf8_safe
from rnngen.errors import CheckpointError, RnngenError, param
from rnngen.models import checkpoint
from rnngen.models.checkpoint import Checkpoint
from rnngen.models.precision import Arithmetic, resolve
from rnngen.store.hub import is_hub_ref
from rnngen.store.names import check_name
from rnngen.store.resolve import resolve_checkpoint
from rnngen.store.runs import BEST, LAST, RunFolder, require_same_tokenizer
from rnngen.training.resume import seconds_of
from rnngen.training.schedule import progress_of
from rnngen.training.sizing import sized_configs

MODEL_FIELDS = frozenset(field.name for field in dataclasses.fields(ModelConfig)) - {"vocab_size"}
TRAIN_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig))
# A resumed run may change its budget, where and in what arithmetic it runs, its samples and its patience; the
# rest is the run's own.
RESUMABLE = frozenset(
    {
        "steps",
        "time_budget",
        "eval_every",
        "eval_tokens",
        "log_every",
        "device",
        "precision",
        "compile",
        "samples",
        "sample_prompt",
        "patience",
    }
)
# Dropout shapes no weight: a fine-tune may change it, as it may change every training value.
FINE_TUNABLE_MODEL = frozenset({"dropout"})


@dataclass(frozen=True)
class RunPlan:
    """A run about to train: its folder, its corpus, its configurations, and the weights it starts from.

    `resume_from` is the run's own `last` checkpoint when it continues; `init_from` the checkpoint file
    whose weights a fine-tune starts from; `notice` a line the user should read before training starts.
    `candidates` are the shapes a new run's time budget chooses among before it trains
    (`rnngen.training.sizing`); `sizing` records the choice made. `arithmetic` is what its `precision` computes in
    on its device (`with_arithmetic`).
    """

    run: RunFolder
    corpus: Corpus
    model: ModelConfig
    train: TrainConfig
    resume_from: Checkpoint | None = None
    init_from: Path | None = None
    notice: str | None = None
    candidates: tuple[tuple[ModelConfig, TrainConfig], ...] = ()
    sizing: dict[str, Any] | None = None
    arithmetic: Arithmetic | None = None

    @property
    def resuming(self) -> bool:
        return self.resume_from is not None


def check_overrides(overrides: dict[str, Any]) -> None:
    """Refuse a keyword that is no model or training value, naming the ones there are."""
    unknown = sorted(set(overrides) - MODEL_FIELDS - TRAIN_FIELDS)
    if unknown:
        raise RnngenError(
            f"unknown training option {', '.join(param(name) for name in unknown)}: choose from "
            f"{', '.join(sorted(MODEL_FIELDS | TRAIN_FIELDS))}"
        )


def train_config(base: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """`base` with the training values of `overrides`.

    A budget named alone replaces both of the base's: `steps` alone trains without a time limit, and
    `time_budget` alone without a step limit.
    """
    values = {**base.to_dict(), **{key: value for key, value in overrides.items() if key in TRAIN_FIELDS}}
    if "steps" in overrides and "time_budget" not in overrides:
        values["time_budget"] = None
    if "time_budget" in overrides and "steps" not in overrides:
        values["steps"] = None
    if values.get("sample_prompt") is not None:
        # A byte that is not UTF-8 in a command-line prompt: U+FFFD, as the completion reads it, so the samples
        # shown, metrics.jsonl and config.json hold valid UTF-8.
        values["sample_prompt"] = utf8_safe(values["sample_prompt"])
    return TrainConfig(**values)


def new_run_name(corpus: str, kind: str) -> str:
    """A run name that sorts by time: `<corpus>-<model>-<YYYYmmdd-HHMMSS>`."""
    return f"{corpus}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def plan_new(corpus: Corpus, preset: Preset, overrides: dict[str, Any], run: RunFolder) -> RunPlan:
    """A new run of `preset` with `overrides` on `corpus`, written to `run`."""
    check_overrides(overrides)
    model = dataclasses.replace(
        preset.model,
        **{key: value for key, value in overrides.items() if key in MODEL_FIELDS},
        vocab_size=corpus.vocab_size,
    )
    train = train_config(preset.train, overrides)
    return RunPlan(run, corpus, model, train, candidates=tuple(sized_configs(model, train, preset.sizes, overrides)))


def plan_fine_tune(
    init_from: str, corpus: Corpus, preset: Preset, overrides: dict[str, Any], run: RunFolder, checkpoints: Path
) -> RunPlan:
    """A new run on `corpus` that starts from the weights of checkpoint `init_from`, with its model sizes and a
    fresh optimizer and schedule; refused when an override would resize a weight or the corpus was encoded
    with another tokenizer."""
    check_overrides(overrides)
    fixed = sorted((set(overrides) & MODEL_FIELDS) - FINE_TUNABLE_MODEL)
    if fixed:
        raise RnngenError(
            f"{param('init_from')} takes the model's sizes from {init_from}; drop "
            f"{', '.join(param(name) for name in fixed)}"
        )
    source_run, path = resolve_checkpoint(init_from, checkpoints)
    source = checkpoint.load(path)
    # `rnngen prepare --tokenizer-from` reads a run (name or folder): for a file or a hub model, name its folder.
    is_run = Path(init_from).is_dir() or (checkpoints / init_from).is_dir()
    require_same_tokenizer(
        f"corpus {corpus.name}",
        corpus.meta["tokenizer"],
        source.corpus["tokenizer"],
        f"prepare it with the tokenizer of {init_from}: rnngen prepare --dataset YOUR_TEXTS "
        f"--tokenizer-from {init_from if is_run else source_run.path}",
    )
    model = dataclasses.replace(source.model, **{key: overrides[key] for key in FINE_TUNABLE_MODEL if key in overrides})
    return RunPlan(run, corpus, model, train_config(preset.train, overrides), init_from=path)


def plan_resume(
    reference: str, overrides: dict[str, Any], corpora: Path, checkpoints: Path, corpus_name: str | None = None
) -> RunPlan:
    """Continue run `reference` (a name or folder) from its `last` checkpoint with `overrides`, which may change
    only what `RESUMABLE` names; `corpus_name`, when given, must be the run's own corpus."""
    check_overrides(overrides)
    if is_hub_ref(reference):
        raise RnngenError(
            f"{param('resume')} continues a run of this machine; a hub model is fine-tuned with "
            f"{param('init_from')} {reference}"
        )
    run, _ = resolve_checkpoint(reference, checkpoints)
    saved = last_checkpoint(run)
    fixed = sorted(set(overrides) - RESUMABLE)
    if corpus_name is not None and corpus_name != saved.corpus["name"]:
        fixed.append("corpus")
    if fixed:
        raise RnngenError(
            f"{param('resume')} keeps the run's model, data and optimizer settings; drop "
            f"{', '.join(param(name) for name in fixed)}, or start a new run"
        )
    train = train_config(saved.training, overrides)
    if progress_of(saved.step, seconds_of(saved, run), train) >= 1.0:
        raise RnngenError(
            f"{run.name} already spent its budget at step {saved.step}: pass a larger "
            f"{param('steps')} or {param('time_budget')} to continue"
        )
    without_improvement = saved.resume_state["stale"] if saved.resume_state else 0
    if train.patience and without_improvement >= train.patience:
        raise RnngenError(
            f"{run.name} stopped at step {saved.step} after {without_improvement} evaluations without "
            f"a lower validation loss: pass a larger {param('patience')} (or {param('patience')} 0) to continue"
        )
    notice = None
    if saved.resume_state is None:
        notice = (
            f"{run.file(LAST)} holds weights only: resuming at step {saved.step} with a fresh optimizer and "
            "random state, so the losses will differ from an unbroken run"
        )
    corpus = corpus_of(saved.corpus, corpora)
    if not same_data(saved.corpus, corpus):
        then, now = saved.corpus["train_tokens"], corpus.identity()["train_tokens"]
        counts = f"{now:,} training tokens now, {then:,} then" if then != now else "other tokens"
        raise RnngenError(
            f"corpus {corpus.name} was rebuilt since run {run.name} trained on it ({counts}): prepare it again "
            f"from the run's source to resume, or start a new run from its weights with {param('init_from')} "
            f"{run.name}"
        )
    return RunPlan(run, corpus, saved.model, train, resume_from=saved, notice=notice, sizing=saved.sizing)


def arithmetic_of(model: ModelConfig, train: TrainConfig) -> Arithmetic:
    """What `train.precision` computes `model` in on `train.device`; a precision that cannot run there is refused
    here, before any folder is made."""
    from rnngen.models import device as devices

    return resolve(train.precision, devices.pick(train.device), model)


def with_arithmetic(plan: RunPlan) -> RunPlan:
    """The plan with its arithmetic (`arithmetic_of`)."""
    return dataclasses.replace(plan, arithmetic=arithmetic_of(plan.model, plan.train))


def new_run_arithmetic(preset: Preset, overrides: dict[str, Any]) -> Arithmetic:
    """The arithmetic of a new run of `preset` with `overrides`, known before its corpus is (the embedded corpus may
    take minutes to prepare): it depends on the model's kind and the device alone, which sizing keeps."""
    check_overrides(overrides)
    model = dataclasses.replace(preset.model, **{key: value for key, value in overrides.items() if key in MODEL_FIELDS})
    return arithmetic_of(model, train_config(preset.train, overrides))


def last_checkpoint(run: RunFolder) -> Checkpoint:
    """The run's `last` checkpoint; when it is damaged, the error says how to go on from `best`."""
    try:
        return checkpoint.load(run.file(LAST))
    except RnngenError as exc:
        if not run.file(BEST).exists():
            raise
        raise CheckpointError(
            f"{exc}; to resume from the best weights instead (with a fresh optimizer): "
            f"cp {run.file(BEST)} {run.file(LAST)}"
        ) from exc


def run_folder(checkpoints: Path, name: str) -> RunFolder:
    """The folder of a new run called `name`, refused unless it is one folder name."""
    return RunFolder(Path(checkpoints) / check_name(name, "run"))
