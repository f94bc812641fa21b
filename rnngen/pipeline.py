"""`rnngen.prepare` and `rnngen.train`: the library calls behind `rnngen prepare` and `rnngen train`.

    import rnngen
    corpus = rnngen.prepare("notes.txt", tokenizer="char", name="notes")
    summary = rnngen.train("notes", preset="cpu", time_budget=600, hidden=256, name="notes-lstm")
    summary.run, summary.best_val_bpc
    rnngen.train(resume="notes-lstm", steps=5000)

`train` is the one training entry, for Python and the command line alike: it composes the parts of
`rnngen.training.session` (the plan, the run's lock, the stop flag, the loop) with the trackers and hands the trainer
the sampler of `rnngen.generation`. Errors are `rnngen.errors.RnngenError`s whose messages name these functions'
parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnngen.data.encoding import ProgressFn
from rnngen.data.preparing import prepare as prepare_corpus
from rnngen.data.reading import Corpus
from rnngen.data.sources import DEFAULT_DATASET, SourceSpec
from rnngen.data.vocabulary import tokenizer_spec
from rnngen.errors import CheckpointError, CorpusError, param
from rnngen.store.locations import checkpoints_dir, corpora_dir
from rnngen.store.resolve import resolve_checkpoint
from rnngen.training.events import EventFn, Finished, Notice


def prepare(
    dataset: str = DEFAULT_DATASET,
    *,
    name: str | None = None,
    config: str | None = None,
    revision: str | None = None,
    split: str = "train",
    val_split: str | None = None,
    val_fraction: float = 0.1,
    text_column: str | None = None,
    documents: str = "auto",
    streaming: bool = False,
    max_chars: int | None = None,
    tokenizer: str | None = None,
    vocab_size: int | None = None,
    tokenizer_from: str | None = None,
    force: bool = False,
    corpora: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
) -> Corpus:
    """Prepare `dataset` (a hub id, a local file or folder, or the embedded "pydocs") into a tokenizer and
    token arrays under `corpora/<name>/`, and return the corpus; an existing one prepared with the same
    arguments is reused (`progress` is then never called). The keywords are `rnngen prepare`'s options (see
    `rnngen prepare --help`); `tokenizer` None is sentencepiece's unigram model, or the one `tokenizer_from` names.
    `progress(stage, done, total)` hears each stage ("load", "tokenizer", "encode", "write") as it advances."""
    spec = SourceSpec(
        dataset=dataset,
        config=config,
        revision=revision,
        split=split,
        val_split=val_split,
        text_column=text_column,
        streaming=streaming,
        max_chars=max_chars,
        documents=documents,
    )
    root = corpora_dir(corpora)
    from_path = tokenizer_file(tokenizer_from, root, checkpoints_dir(checkpoints)) if tokenizer_from else None
    corpus, _ = prepare_corpus(
        spec,
        tokenizer_spec(tokenizer, vocab_size, from_path),
        root=root,
        name=name,
        val_fraction=val_fraction,
        force=force,
        progress=progress or (lambda stage, done, total: None),
    )
    return corpus


def tokenizer_file(reference: str, corpora: Path, checkpoints: Path) -> str:
    """The tokenizer.model that `tokenizer_from` names: a file, a folder holding one, a corpus, or a run."""
    path = Path(reference).expanduser()
    for candidate in (path, path / "tokenizer.model", Path(corpora) / reference / "tokenizer.model"):
        if candidate.is_file():
            return str(candidate)
    try:
        run, _ = resolve_checkpoint(reference, Path(checkpoints))
    except CheckpointError:
        run = None
    if run is None or not run.tokenizer_path.is_file():
        raise CorpusError(
            f"{param('tokenizer_from')} {reference}: no tokenizer.model file, corpus (`rnngen corpora`) "
            f"or run (`rnngen runs`) of that name"
        )
    return str(run.tokenizer_path)


def train(
    corpus: str | Corpus | None = None,
    preset: str = "auto",
    *,
    name: str | None = None,
    resume: str | None = None,
    init_from: str | None = None,
    corpora: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    on_event: EventFn | None = None,
    report_to: str | Sequence[str] | None = None,
    **overrides: Any,
) -> Finished:
    """Train a model to the end of its budget and return the run's summary (`summary.run` is its folder).

    `corpus`: a prepared corpus's name under `corpora` (the embedded pydocs, prepared when missing, by default) or a
    `Corpus`. `preset`: "auto" (gpu with CUDA, else cpu), "cpu", "gpu" or "tiny"; every `ModelConfig`
    and `TrainConfig` field can be passed as a keyword to override it (`hidden=256`, `time_budget=600`,
    `steps=2000`: a budget given alone replaces both of the preset's; `patience=0` and `eval_tokens=0` turn early
    stopping off and read the whole validation split). `resume` continues a run by name or folder (only its budget,
    device, evaluation, samples and patience may change); `init_from` fine-tunes a run, a .safetensors file or
    `hf:USER/NAME` on a corpus encoded with its tokenizer.
    `on_event` receives typed training events (`rnngen.training.events`), on rank 0 only; `report_to` sends their
    figures to "tensorboard" (`RUN/tensorboard/`), "wandb" or both ("tensorboard,wandb"; "none" by default), refused
    at once when a package is missing. Ctrl-C, SIGTERM or SIGHUP saves the run and raises
    `rnngen.training.signals.Interrupted`; continue with `resume`.
    """
    # Imported here: `rnngen.prepare` needs no torch.
    from rnngen.generation.samples import Sampler
    from rnngen.training import distributed, session, trackers
    from rnngen.training.signals import Interrupted

    tracker_names = trackers.parse_report_to(report_to)
    trackers.require(tracker_names)
    corpora, checkpoints = corpora_dir(corpora), checkpoints_dir(checkpoints)
    finished = False
    try:
        plan, world = session.plan_run(
            corpus, preset, name, resume, init_from, overrides, corpora, checkpoints, on_event
        )
        with session.claimed(plan, world), session.stop_flag() as flag:
            if plan.notice and world.is_main and on_event is not None:
                on_event(Notice(plan.notice))
            listeners = session.trackers_for(tracker_names, plan) if world.is_main else {}
            try:
                with trackers.tracked(listeners, on_event) as listener:
                    summary = session.fit(plan, world, listener, Sampler, flag)
            except Interrupted:
                # Left while the flag still takes signals: torchrun passes a second Ctrl-C on as a SIGTERM, the
                # same request, which must not cut the leaving short nor replace the word on the saved step.
                distributed.teardown(finished=False)
                raise
        finished = True
        return summary
    finally:
        distributed.teardown(finished)
