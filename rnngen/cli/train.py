"""`rnngen train` and `rnngen runs`: options in, a run folder out; the loop itself is `rnngen.training`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from rnngen.cli.common import (
    Count,
    Paths,
    pass_paths,
    prepare_default_corpus,
    print_listing,
)
from rnngen.config import (
    DEVICES,
    IMPLS,
    MAX_SEED,
    MODEL_KINDS,
    PRESETS,
    ModelConfig,
    TrainConfig,
)
from rnngen.errors import RnngenError


def _preset_help(section: str, key: str, text: str) -> str:
    values = ", ".join(f"{name} {'-' if preset[section].get(key) is None else preset[section].get(key)}"
                       for name, preset in PRESETS.items())
    return f"{text} [presets: {values}]"


# Options a resumed run may change: the budget, where it runs, its samples and its patience.
# Everything else is the run's own.
RESUMABLE = {"steps", "time_budget", "eval_every", "eval_tokens", "log_every", "device", "compile", "plain", "samples",
             "sample_prompt", "patience"}
MODEL_OPTIONS = {"kind", "layers", "hidden", "embed", "dropout", "tie", "impl"}
TRAIN_OPTIONS = {"batch_size", "seq_len", "lr", "warmup", "weight_decay", "ema", "clip", "steps", "time_budget", "eval_every",
                 "eval_tokens", "log_every", "seed", "device", "compile", "samples", "sample_prompt", "patience"}


@click.command()
@click.option("--corpus", "corpus_name", default="pydocs", show_default=True,
              help="A prepared corpus (see `rnngen corpora`); the embedded pydocs is prepared when missing.")
@click.option("--preset", type=click.Choice(["auto", *PRESETS]), default="auto", show_default=True,
              help="Sizes for the device: auto is gpu with CUDA, else cpu; tiny is a seconds-long smoke test.")
@click.option("--model", "kind", type=click.Choice(MODEL_KINDS), help=_preset_help("model", "kind", "Recurrent layer type; mingru/minlstm train with a parallel scan."))
@click.option("--layers", type=click.IntRange(min=1), help=_preset_help("model", "layers", "Recurrent layers."))
@click.option("--hidden", type=click.IntRange(min=1), help=_preset_help("model", "hidden", "Hidden units per layer."))
@click.option("--embed", type=click.IntRange(min=1), help=_preset_help("model", "embed", "Embedding size."))
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help=_preset_help("model", "dropout", "Dropout between layers and before the head."))
@click.option("--tie/--no-tie", default=None, help="Share the embedding with the output head. [default: tie]")
@click.option("--impl", type=click.Choice(IMPLS),
              help="fused: PyTorch's layers (cuDNN); scratch: the lecture's cells unrolled in Python, slower, "
                   "with Cho et al.'s GRU. [default: fused]")
@click.option("--batch-size", type=click.IntRange(min=1), help=_preset_help("train", "batch_size", "Streams per batch."))
@click.option("--seq-len", type=click.IntRange(min=1),
              help=_preset_help("train", "seq_len", "Tokens per window of truncated backpropagation through time."))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help=_preset_help("train", "lr", "Peak learning rate."))
@click.option("--warmup", type=click.IntRange(min=0), help=_preset_help("train", "warmup", "Linear warmup steps."))
@click.option("--weight-decay", type=click.FloatRange(min=0),
              help=_preset_help("train", "weight_decay", "AdamW weight decay of the weight matrices."))
@click.option("--ema", type=click.FloatRange(0, 1), metavar="SHARE",
              help=_preset_help("train", "ema", "Evaluate, sample and save a moving average of the weights whose time "
                                "constant is this share of the run; 0 keeps the last weights."))
@click.option("--clip", type=click.FloatRange(min=0), help="Gradient-norm clipping; 0 turns it off. [default: 1.0]")
@click.option("--steps", type=Count(), help=_preset_help("train", "steps", "Stop after this many steps."))
@click.option("--time", "time_budget", type=click.FloatRange(min=0, min_open=True),
              help=_preset_help("train", "time_budget", "Stop after this many seconds of training."))
@click.option("--eval-every", type=click.IntRange(min=1), help=_preset_help("train", "eval_every", "Steps between evaluations."))
@click.option("--eval-tokens", type=click.IntRange(min=0),
              help=_preset_help("train", "eval_tokens", "Validation tokens per evaluation; 0 is the whole split."))
@click.option("--samples/--no-samples", default=None,
              help="At each evaluation, show a 40-token completion of a fixed prompt (seeded, so samples compare "
                   "across evaluations; stored in metrics.jsonl, not counted in --time). [default: samples]")
@click.option("--sample-prompt", metavar="TEXT",
              help="The prompt of those samples. [default: \"Studying Deep Learning is really\" on pydocs, "
                   "else the opening words of the validation text]")
@click.option("--patience", type=click.IntRange(min=0), metavar="N",
              help="Stop after N evaluations in a row without a lower validation loss (best.safetensors keeps "
                   "the best); 0 turns it off. [default: off]")
@click.option("--log-every", type=click.IntRange(min=1), help="Steps between metric lines. [default: 10]")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Random seed (weights, dropout). [default: 1337]")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train. [default: auto: CUDA, then MPS, then CPU]")
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@click.option("--name", "run_name", help="The run folder name under checkpoints/. [default: CORPUS-MODEL-TIME]")
@click.option("--resume", help="Continue a run (name or folder) from its last checkpoint; --steps/--time/--eval-*/"
                               "--log-every/--device/--compile/--patience/--samples/--sample-prompt may change.")
@click.option("--init-from", metavar="CHECKPOINT",
              help="Fine-tune: start a new run from this checkpoint's weights (a run, a .safetensors file or "
                   "hf:USER/NAME) with its model sizes, a fresh optimizer and schedule; the corpus must use its "
                   "tokenizer (`rnngen prepare --tokenizer-from`).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine (launches torchrun; one per GPU, or CPU processes).")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of the live display.")
@click.pass_context
def train(ctx: click.Context, corpus_name: str, preset: str, run_name: str | None, resume: str | None,
          init_from: str | None, nproc: int, plain: bool, **options: Any) -> None:
    """Train a recurrent language model; checkpoints go to checkpoints/RUN/.

    \b
    rnngen train                                           # cpu preset: 2x512 LSTM, 3 minutes
    rnngen train --model gru --layers 1 --hidden 256 --steps 2000
    rnngen train --corpus notes --time 600 --name notes-lstm
    rnngen train --resume notes-lstm --steps 5000          # continue where it stopped
    rnngen train --corpus my_texts --init-from notes-lstm --steps 500 --lr 1e-3   # fine-tune
    rnngen train --steps 20000 --patience 5                # stop once 5 evaluations bring no lower loss
    rnngen train --sample-prompt "The loss" --eval-every 50 # watch it learn to complete a prompt
    rnngen train --nproc 4                                 # data-parallel over 4 GPUs (or CPU processes)
    """
    from rnngen.training import distributed

    if nproc > 1 and not distributed.launched():
        if not resume:  # a resumed run's device is its own, checked by each process once it is read
            distributed.check_gpus(nproc, options.get("device") or "auto")
        _launch_torchrun(nproc)
    finished = False
    try:
        _train(ctx, corpus_name, preset, run_name, resume, init_from, plain, options)
        finished = True
    finally:
        distributed.teardown(finished)


def _launch_torchrun(nproc: int) -> None:
    """Run this same command under torchrun with `nproc` processes, and exit with its status.

    torchrun runs in its own session, so a Ctrl-C at the terminal reaches it once, through this
    process: SIGINT and SIGTERM are passed on (a closed terminal's SIGHUP as SIGTERM), torchrun passes
    them to the workers, which save `last` and stop, and this process waits for all of them and
    exits with 128 + the signal's number, as a single process does.
    """
    import signal
    import subprocess

    args = sys.argv[1:]
    at = next(i for i, arg in enumerate(args) if arg == "--nproc" or arg.startswith("--nproc="))
    del args[at: at + (1 if "=" in args[at] else 2)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "rnngen", *args]
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signal.SIGTERM if signum == signal.SIGHUP else signum)
        process.send_signal(received[-1])

    process = subprocess.Popen(command, start_new_session=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = process.wait()
    sys.exit(128 + received[0] if received and code != 0 else code)


def _train(ctx: click.Context, corpus_name: str, preset: str, run_name: str | None, resume: str | None,
           init_from: str | None, plain: bool, options: dict[str, Any]) -> None:
    from rnngen.cli.display import TrainDisplay, err, out, summary_table
    from rnngen.data.reading import Corpus
    from rnngen.store.names import check_name
    from rnngen.training import distributed
    from rnngen.training.resume import seconds_of
    from rnngen.store.runs import LAST, RunFolder
    from rnngen.store.resolve import resolve_checkpoint
    from rnngen.data.reading import corpus_of
    from rnngen.training.schedule import progress_of
    from rnngen.training.signals import stop_on_signals
    from rnngen.generation.samples import Sampler
    from rnngen.training.trainer import Trainer, new_run_name

    world = distributed.setup(options["device"] or "auto") if not resume else None
    paths = ctx.find_object(Paths)
    given = {key for key, value in options.items()
             if value is not None and ctx.get_parameter_source(key) != click.core.ParameterSource.DEFAULT}
    if run_name is not None and not resume:
        check_name(run_name, "run")
    resume_from, init_path = None, None
    if resume and init_from:
        raise RnngenError("--resume continues a run, --init-from starts a new one from a run's weights: pick one")
    if resume:
        run, _ = resolve_checkpoint(resume, paths.checkpoints)
        resume_from = _resume_checkpoint(run)
        fixed = sorted(given - RESUMABLE)
        # --preset only fills in options, which the run already has; a named other corpus is refused.
        corpus_named = ctx.get_parameter_source("corpus_name") != click.core.ParameterSource.DEFAULT
        if corpus_named and corpus_name != resume_from.corpus["name"]:
            fixed.append("corpus")
        if fixed:
            raise RnngenError(f"--resume keeps the run's model, data and optimizer settings; drop "
                              f"{', '.join('--' + name.replace('_', '-') for name in fixed)}, or start a new run")
        model_cfg = resume_from.model
        train_cfg = _train_config(resume_from.training.to_dict(), options, given)
        corpus = corpus_of(resume_from.corpus, paths.corpora)
        if progress_of(resume_from.step, seconds_of(resume_from, run), train_cfg) >= 1.0:
            raise RnngenError(f"{run.name} already spent its budget at step {resume_from.step}: pass a larger "
                              f"--steps or --time to continue")
        stale = int((resume_from.resume_state or {}).get("stale", 0))
        if train_cfg.patience is not None and stale >= train_cfg.patience:
            raise RnngenError(f"{run.name} stopped at step {resume_from.step} after {stale} evaluations without a "
                              f"lower validation loss: pass a larger --patience (or --patience 0) to continue")
        world = distributed.setup(train_cfg.device)  # the run's device, unless --device changes it
        _claim(ctx, run, True, world)
        if resume_from.resume_state is None and world.is_main:
            err.print(f"{run.file(LAST)} holds weights only: resuming at step {resume_from.step} with a fresh "
                      "optimizer and random state, so the losses will differ from an unbroken run")
    else:
        import torch

        preset = preset if preset != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
        if world.is_main:  # one process prepares the embedded corpus; the others wait for it
            prepare_default_corpus(paths, corpus_name)
        distributed.barrier()
        corpus = Corpus.find(paths.corpora, corpus_name)
        if init_from:
            model_cfg, init_path = _fine_tune_model(init_from, corpus, options, given, paths)
        else:
            model_cfg = ModelConfig(**{**PRESETS[preset]["model"],
                                       **{name: options[name] for name in MODEL_OPTIONS if name in given},
                                       "vocab_size": corpus.vocab_size})
        train_cfg = _train_config(PRESETS[preset]["train"], options, given)
        # Rank 0 names the run: the ranks' clocks may cross a second boundary apart.
        run = RunFolder(paths.checkpoints / distributed.broadcast(run_name or new_run_name(corpus.name, model_cfg.kind)))
        _claim(ctx, run, False, world)
    budget = " or ".join(filter(None, [f"{train_cfg.steps} steps" if train_cfg.steps else "",
                                       f"{train_cfg.time_budget:g} s" if train_cfg.time_budget else ""]))
    display = TrainDisplay(plain or not world.is_main, budget)
    with stop_on_signals() as stop, display:
        trainer = Trainer(corpus, model_cfg, train_cfg, run, resume_from=resume_from, init_from=init_path, stop=stop,
                          world=world, on_event=display if world.is_main else None, sampler=Sampler)
        try:
            summary = trainer.fit()
        except _oom_type() as exc:
            raise RnngenError(f"the GPU ran out of memory with --batch-size {train_cfg.batch_size} --seq-len "
                              f"{train_cfg.seq_len}: try --batch-size {max(1, train_cfg.batch_size // 2)}") from exc
    if world.is_main:
        out.print(summary_table(summary))
        err.print(f'complete with: rnngen complete --checkpoint {run.path} "Your prompt"')


def _claim(ctx: click.Context, run: Any, resuming: bool, world: Any) -> None:
    """Rank 0 locks the run folder until the command ends; every rank raises the same error when it cannot."""
    from rnngen.training import distributed

    error = None
    if world.is_main:
        try:
            ctx.call_on_close(run.claim(resuming).release)
        except RnngenError as exc:
            error = str(exc)
    error = distributed.broadcast(error)
    if error is not None:
        raise RnngenError(error)


def _resume_checkpoint(run: Any) -> Any:
    """The run's `last` checkpoint; when it is damaged, the error says how to go on from `best`."""
    from rnngen.models import checkpoint
    from rnngen.store.runs import BEST, LAST

    try:
        return checkpoint.load(run.file(LAST))
    except RnngenError as exc:
        if not run.file(BEST).exists():
            raise
        raise RnngenError(f"{exc}; to resume from the best weights instead (with a fresh optimizer): "
                          f"cp {run.file(BEST)} {run.file(LAST)}") from exc


def _fine_tune_model(init_from: str, corpus: Any, options: dict[str, Any], given: set[str],
                     paths: Paths) -> tuple[ModelConfig, Any]:
    """The model configuration and checkpoint file `--init-from` starts from; refuses sizes it would not fit and
    a corpus encoded with another tokenizer."""
    import dataclasses

    from rnngen.models import checkpoint
    from rnngen.store.runs import require_same_tokenizer
    from rnngen.store.resolve import resolve_checkpoint

    # Dropout shapes no weight: it stays free, like the training options.
    fixed = sorted((given & MODEL_OPTIONS) - {"dropout"})
    if fixed:
        raise RnngenError(f"--init-from takes the model's sizes from {init_from}; drop "
                          f"{', '.join('--' + name.replace('_', '-') for name in fixed)}")
    run, path = resolve_checkpoint(init_from, paths.checkpoints)
    source = checkpoint.load(path)
    # --tokenizer-from reads a run (name or folder): for a checkpoint file or a hub model, name its folder.
    is_run = Path(init_from).is_dir() or (paths.checkpoints / init_from).is_dir()
    tokenizer_from = init_from if is_run else run.path
    require_same_tokenizer(f"corpus {corpus.name}", corpus.meta["tokenizer"], source.corpus.get("tokenizer", {}),
                           f"prepare it with the tokenizer of {init_from}: "
                           f"rnngen prepare --dataset YOUR_TEXTS --tokenizer-from {tokenizer_from}")
    changes = {"dropout": options["dropout"]} if "dropout" in given else {}
    return dataclasses.replace(source.model, **changes), path


def _oom_type() -> type[BaseException]:
    import torch

    return getattr(torch.cuda, "OutOfMemoryError", MemoryError)


def _train_config(base: dict[str, Any], options: dict[str, Any], given: set[str]) -> TrainConfig:
    values = {**base, **{key: options[key] for key in TRAIN_OPTIONS if key in given}}
    # A budget named on the command line replaces the preset's: --steps alone means no time limit.
    if "steps" in given and "time_budget" not in given:
        values["time_budget"] = None
    if "time_budget" in given and "steps" not in given:
        values["steps"] = None
    if values.get("eval_tokens") == 0:
        values["eval_tokens"] = None
    if values.get("patience") == 0:
        values["patience"] = None
    return TrainConfig(**values)



@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@pass_paths
def runs(paths: Paths, as_json: bool) -> None:
    """List training runs: model, corpus, steps, best validation bits per character."""
    from rnngen.cli.display import runs_table
    from rnngen.store.runs import list_runs

    rows = []
    for run in list_runs(paths.checkpoints):
        try:
            config = run.config()
        except RnngenError:
            continue
        metrics = run.metrics()
        model = config["model"]
        best = run.best_val_bpc()
        size = sum(p.stat().st_size for p in run.path.glob("*.safetensors"))
        rows.append({"run": run.name, "model": f"{model['kind']} {model['layers']}x{model['hidden']}",
                     "corpus": config["corpus"]["name"], "steps": max((r.get("step", 0) for r in metrics), default=0),
                     "best": f"{best:.4f}" if best is not None else "-", "size": f"{size / 1e6:.1f} MB",
                     "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.path.stat().st_mtime)),
                     "path": str(run.path)})
    print_listing(rows, as_json, runs_table, f"no runs in {paths.checkpoints} yet: run `rnngen train`")


