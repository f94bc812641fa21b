"""The parts of one training call that `rnngen.train` puts together: the plan with its processes (`plan_run`, which
prepares the embedded corpus when a run needs it), the run's lock (`claimed`), the stop flag (`stop_flag`), and the
loop on the cores other processes leave free (`fit`).

Under torchrun every process makes the same call: rank 0 prepares the embedded corpus, names and locks the run,
writes its files and reports events; all ranks train.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnngen.config import PRESETS, Preset
from rnngen.data.preparing import ensure_default, folder_name
from rnngen.data.reading import Corpus
from rnngen.data.sources import DEFAULT_DATASET
from rnngen.errors import RnngenError, param
from rnngen.store.hub import is_hub_ref
from rnngen.store.lock import Lock
from rnngen.store.resolve import resolve_checkpoint
from rnngen.training import distributed, sizing, trackers
from rnngen.training.distributed import World
from rnngen.training.events import EventFn, Finished, Notice, Prepared, Preparing, Sized
from rnngen.training.plan import (
    RunPlan,
    new_run_arithmetic,
    new_run_name,
    plan_fine_tune,
    plan_new,
    plan_resume,
    run_folder,
    with_arithmetic,
)
from rnngen.training.signals import StopFlag, stop_on_signals
from rnngen.training.threads import on_free_cores
from rnngen.training.trainer import SamplerFactory, Trainer


def preset_for(name: str) -> Preset:
    """The preset called `name`; `auto` is `gpu` where CUDA is, else `cpu`."""
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PRESETS:
        raise RnngenError(f"unknown {param('preset')} {name!r}: choose auto, {', '.join(PRESETS)}")
    return PRESETS[name]


def plan_run(
    corpus: str | Corpus | None,
    preset: str,
    name: str | None,
    resume: str | None,
    init_from: str | None,
    overrides: dict[str, Any],
    corpora: Path,
    checkpoints: Path,
    on_event: EventFn | None,
) -> tuple[RunPlan, World]:
    """What the call trains (a new run, a resumed one or a fine-tune) and the processes that train it."""
    if resume and init_from:
        raise RnngenError(
            f"{param('resume')} continues a run, {param('init_from')} starts a new one from a run's weights: pick one"
        )
    if resume:
        named = corpus.name if isinstance(corpus, Corpus) else corpus
        plan = plan_resume(resume, overrides, corpora, checkpoints, named)
        world = distributed.setup(plan.train.device)  # the run's device, unless an override changes it
        return with_arithmetic(plan), world
    chosen = preset_for(preset)
    world = distributed.setup(overrides.get("device") or chosen.train.device)
    # A new run's arithmetic is known, or refused, before its corpus is prepared; a fine-tune's model is the
    # checkpoint's, known once it is read.
    arithmetic = None if init_from else new_run_arithmetic(chosen, overrides)
    plan = _plan_start(corpus, chosen, name, init_from, overrides, corpora, checkpoints, world, on_event)
    return (dataclasses.replace(plan, arithmetic=arithmetic) if arithmetic else with_arithmetic(plan)), world


def _plan_start(
    corpus: str | Corpus | None,
    preset: Preset,
    name: str | None,
    init_from: str | None,
    overrides: dict[str, Any],
    corpora: Path,
    checkpoints: Path,
    world: World,
    on_event: EventFn | None,
) -> RunPlan:
    if corpus is None and init_from:
        # Checked before the embedded corpus is built: its tokenizer is not the one of the weights.
        if not is_hub_ref(init_from):
            resolve_checkpoint(init_from, checkpoints)  # a run that is not there is said first
        raise RnngenError(
            f"{param('init_from')} {init_from} fine-tunes on your text: prepare it with that model's tokenizer "
            f"(rnngen prepare --dataset YOUR_TEXTS --tokenizer-from {init_from}) and name it with {param('corpus')}"
        )
    if not isinstance(corpus, Corpus):
        corpus_name = corpus or DEFAULT_DATASET
        if corpus_name == DEFAULT_DATASET and world.is_main:  # the other ranks wait for it
            _prepare_default(corpora, on_event)
        distributed.barrier()
        corpus = Corpus.find(corpora, folder_name(corpora, corpus_name))
    kind = overrides.get("kind") or preset.model.kind
    # Rank 0 names the run: the ranks' clocks may cross a second boundary apart.
    run = run_folder(checkpoints, distributed.broadcast(name or new_run_name(corpus.name, kind)))
    if init_from:
        return plan_fine_tune(init_from, corpus, preset, overrides, run, checkpoints)
    return plan_new(corpus, preset, overrides, run)


def _prepare_default(corpora: Path, on_event: EventFn | None) -> None:
    """Prepare the embedded corpus when it is missing, its progress reported as a notice, `Preparing` events and a
    `Prepared` one, which the CLI renders."""
    report = on_event or (lambda event: None)
    prepared = ensure_default(
        corpora, lambda stage, done, total: report(Preparing(stage, done, total)), lambda line: report(Notice(line))
    )
    if prepared is not None:
        report(Prepared(prepared.meta))


def trackers_for(names: tuple[str, ...], plan: RunPlan) -> dict[str, Any]:
    """The trackers `names` of the run, by name, told its configuration."""
    config = trackers.hyperparameters(plan.model, plan.train, plan.corpus.name)
    return {name: trackers.make(name, plan.run, config) for name in names}


@contextlib.contextmanager
def claimed(plan: RunPlan, world: World) -> Iterator[None]:
    """Rank 0 claims the corpus (no prepare replaces it meanwhile) and locks the run folder while it trains;
    every rank raises the same error when it cannot."""
    locks: list[Lock | None] = []
    error = None
    if world.is_main:
        try:
            locks.append(plan.corpus.hold())  # first: a refused run leaves no folder
            locks.append(plan.run.claim(plan.resuming))
        except RnngenError as exc:
            error = exc
    error = distributed.broadcast(error)
    try:
        if error is not None:
            raise error
        yield
    except BaseException:
        if len(locks) == 2 and not plan.resuming and not plan.run.has_checkpoint():
            # A new run that failed before its first save has nothing to resume: it leaves no folder.
            locks.pop().release()
            shutil.rmtree(plan.run.path, ignore_errors=True)
        raise
    finally:
        for lock in reversed(locks):
            if lock is not None:
                lock.release()


@contextlib.contextmanager
def stop_flag() -> Iterator[StopFlag]:
    """The flag the loop watches, which SIGINT, SIGTERM and SIGHUP set (the main thread alone may install signal
    handlers: elsewhere it is never set)."""
    if threading.current_thread() is threading.main_thread():
        with stop_on_signals() as flag:
            yield flag
    else:
        yield StopFlag()


def fit(
    plan: RunPlan, world: World, on_event: EventFn | None, sampler: SamplerFactory | None, stop: StopFlag
) -> Finished:
    """Train the plan; a single process training on the CPU uses the cores other processes leave free."""
    from rnngen.models import device as devices

    if world.size > 1 or devices.pick(plan.train.device).type != "cpu":
        return _fit_on_threads(_sized(plan, world, on_event), world, on_event, sampler, stop)
    with on_free_cores() as note:
        if note and on_event is not None:
            on_event(Notice(note))
        return _fit_on_threads(_sized(plan, world, on_event), world, on_event, sampler, stop)


def _sized(plan: RunPlan, world: World, on_event: EventFn | None) -> RunPlan:
    """The plan with the shape its time budget buys the lowest predicted loss with, measured on the threads the run
    will train on; a plan with no candidates, or one of several processes (each would measure its own), as it is."""
    if not plan.candidates or world.size > 1:
        return plan
    model, train, chosen = sizing.choose(
        list(plan.candidates), plan.corpus.tokens("train"), plan.corpus.meta["tokenizer"]["type"]
    )
    record = chosen.to_dict()
    if on_event is not None:
        on_event(Sized(chosen.line(), record))
    return dataclasses.replace(plan, model=model, train=train, candidates=(), sizing=record)


def _fit_on_threads(
    plan: RunPlan, world: World, on_event: EventFn | None, sampler: SamplerFactory | None, stop: StopFlag
) -> Finished:
    import torch

    trainer = Trainer(
        plan.corpus,
        plan.model,
        plan.train,
        plan.run,
        resume_from=plan.resume_from,
        init_from=plan.init_from,
        stop=stop,
        world=world,
        on_event=on_event if world.is_main else None,
        sampler=sampler,
        sizing=plan.sizing,
        arithmetic=plan.arithmetic,
    )
    try:
        trainer.fit()
    except torch.cuda.OutOfMemoryError as exc:
        rows = plan.train.batch_size
        raise RnngenError(
            f"the GPU ran out of memory with {param('batch_size')} {rows} {param('seq_len')} "
            f"{plan.train.seq_len}: try {param('batch_size')} {max(1, rows // 2)}"
        ) from exc
    return trainer.finished
