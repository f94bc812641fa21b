"""The `rnngen` command line: parse options, build configurations, call the library, render.

Heavy imports (torch, datasets) happen inside the commands that need them, so `rnngen --help`
and `rnngen runs` start instantly. Errors a user can fix are printed as one line; `--debug`
shows the traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from rnngen import __version__
from rnngen.config import DEVICES, IMPLS, MODEL_KINDS, PRESETS, ModelConfig, TrainConfig
from rnngen.errors import RnngenError

SIZE_SUFFIXES = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}


class Count(click.ParamType):
    """An integer that may end in k, M or G: `50M` is 50,000,000."""

    name = "count"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            number = float(text[:-1]) * SIZE_SUFFIXES[text[-1]] if text[-1:] in SIZE_SUFFIXES else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a count like 5000, 200k or 50M", param, ctx)
        if number < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return int(number)


class Group(click.Group):
    """Turns library errors into one line (exit 1) and interruptions into their signal's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            from rich.markup import escape

            from rnngen.display import err

            code = getattr(exc, "exit_code", 1)
            if isinstance(exc, RnngenError):
                message = f"[red]error:[/] {escape(str(exc))}" if code == 1 else escape(str(exc))
                err.print(message, soft_wrap=True)
            else:
                err.print(f"error: {type(exc).__name__}: {exc} (a bug? rerun with --debug for the traceback)",
                          markup=False, soft_wrap=True)
            ctx.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option("--corpora-dir", type=click.Path(file_okay=False, path_type=Path), default="corpora",
              envvar="RNNGEN_CORPORA", show_default=True, show_envvar=True, help="Where prepared corpora live.")
@click.option("--checkpoints-dir", type=click.Path(file_okay=False, path_type=Path), default="checkpoints",
              envvar="RNNGEN_CHECKPOINTS", show_default=True, show_envvar=True, help="Where training runs live.")
@click.version_option(__version__, prog_name="rnngen")
@click.pass_context
def cli(ctx: click.Context, debug: bool, corpora_dir: Path, checkpoints_dir: Path) -> None:
    """Train recurrent language models (RNN, LSTM, GRU) on a text corpus and complete prompts.

    \b
    rnngen train                                   # prepares the embedded corpus, trains ~3 min on a CPU
    rnngen complete "Studying Deep Learning is really"
    rnngen prepare --dataset notes.txt --tokenizer char --name notes
    """
    ctx.obj = {"corpora": corpora_dir, "checkpoints": checkpoints_dir}


# ---------------------------------------------------------------- corpora

@cli.command()
@click.option("--dataset", default="pydocs", show_default=True,
              help="A hub id (Salesforce/wikitext), a local file (.txt .md .json .jsonl .csv .parquet) or folder, "
                   "or `pydocs`, the embedded docstring corpus that needs no network.")
@click.option("--config", "config_name", help="The dataset's config (subset), e.g. wikitext-2-raw-v1.")
@click.option("--revision", help="A hub branch, tag or commit, e.g. refs/convert/parquet.")
@click.option("--split", default="train", show_default=True, help="The split to train on.")
@click.option("--val-split", help="The split to validate on. [default: validation, valid or test when present, "
                                  "else the held-out tail of the train split]")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Held out from the end of the text when the dataset has no validation split.")
@click.option("--text-column", help="The column holding the text. [default: `text`, or the only string column]")
@click.option("--streaming", is_flag=True, help="Stream the dataset instead of downloading it whole; memory stays flat.")
@click.option("--max-chars", type=Count(), help="Read at most this many characters per split (e.g. 50M).")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(["unigram", "bpe", "char"]), default="unigram",
              show_default=True, help="The sentencepiece model type.")
@click.option("--vocab-size", type=click.IntRange(min=8), help="Vocabulary size. [default: sized to the corpus]")
@click.option("--name", help="The corpus folder name. [default: derived from the dataset]")
@click.option("--force", is_flag=True, help="Rebuild even if a corpus with this name exists.")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of live bars.")
@click.pass_obj
def prepare(obj: dict[str, Any], dataset: str, config_name: str | None, revision: str | None, split: str,
            val_split: str | None, val_fraction: float, text_column: str | None, streaming: bool,
            max_chars: int | None, tokenizer_kind: str, vocab_size: int | None, name: str | None, force: bool,
            plain: bool) -> None:
    """Turn a text dataset into a tokenizer and token arrays under corpora/NAME/.

    \b
    rnngen prepare                                        # the embedded pydocs corpus, offline
    rnngen prepare --dataset Salesforce/wikitext --config wikitext-2-raw-v1
    rnngen prepare --dataset roneneldan/TinyStories --streaming --max-chars 50M
    rnngen prepare --dataset ./my_texts/                  # a folder of .txt/.jsonl/.parquet files
    rnngen prepare --dataset notes.txt --tokenizer char --name notes
    """
    from rnngen.sources import SourceSpec

    spec = SourceSpec(dataset=dataset, config=config_name, revision=revision, split=split, val_split=val_split,
                      text_column=text_column, streaming=streaming, max_chars=max_chars)
    _prepare(obj, spec, tokenizer_kind, vocab_size, val_fraction, name, force, plain)


def _prepare(obj: dict[str, Any], spec: Any, tokenizer_kind: str, vocab_size: int | None, val_fraction: float,
             name: str | None, force: bool, plain: bool):
    from rnngen import corpus
    from rnngen.display import PrepareProgress, corpus_table, err, out

    with PrepareProgress(plain) as progress:
        prepared, reused = corpus.prepare(spec, corpus.TokenizerSpec(tokenizer_kind, vocab_size),
                                          root=obj["corpora"], name=name, val_fraction=val_fraction, force=force,
                                          progress=progress)
    (err if reused else out).print(corpus_table(prepared.meta, reused))
    return prepared


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the corpora's meta as JSON.")
@click.pass_obj
def corpora(obj: dict[str, Any], as_json: bool) -> None:
    """List the prepared corpora."""
    from rnngen.corpus import list_corpora
    from rnngen.display import corpora_table

    _listing(list_corpora(obj["corpora"]), as_json, corpora_table,
             f"no corpora in {obj['corpora']} yet: run `rnngen prepare`")


def _listing(rows: list[dict[str, Any]], as_json: bool, table: Any, empty: str) -> None:
    """Rows as JSON, as a table, or a line saying there are none."""
    from rnngen.display import err, out

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        err.print(empty)
    else:
        out.print(table(rows))


# ---------------------------------------------------------------- training

def _preset_help(section: str, key: str, text: str) -> str:
    values = ", ".join(f"{name} {'-' if preset[section].get(key) is None else preset[section].get(key)}"
                       for name, preset in PRESETS.items())
    return f"{text} [presets: {values}]"


# Options a resumed run may change: the budget and where it runs. Everything else is the run's own.
RESUMABLE = {"steps", "time_budget", "eval_every", "eval_tokens", "log_every", "device", "compile", "plain"}
MODEL_OPTIONS = {"kind", "layers", "hidden", "embed", "dropout", "tie", "impl"}
TRAIN_OPTIONS = {"batch_size", "seq_len", "lr", "warmup", "weight_decay", "clip", "steps", "time_budget", "eval_every",
                 "eval_tokens", "log_every", "seed", "device", "compile"}


@cli.command()
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
@click.option("--weight-decay", type=click.FloatRange(min=0), help="AdamW weight decay. [default: 0.01]")
@click.option("--clip", type=click.FloatRange(min=0), help="Gradient-norm clipping; 0 turns it off. [default: 1.0]")
@click.option("--steps", type=Count(), help=_preset_help("train", "steps", "Stop after this many steps."))
@click.option("--time", "time_budget", type=click.FloatRange(min=0, min_open=True),
              help=_preset_help("train", "time_budget", "Stop after this many seconds of training."))
@click.option("--eval-every", type=click.IntRange(min=1), help=_preset_help("train", "eval_every", "Steps between evaluations."))
@click.option("--eval-tokens", type=click.IntRange(min=0),
              help=_preset_help("train", "eval_tokens", "Validation tokens per evaluation; 0 is the whole split."))
@click.option("--log-every", type=click.IntRange(min=1), help="Steps between metric lines. [default: 10]")
@click.option("--seed", type=int, help="Random seed (weights, dropout). [default: 1337]")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train. [default: auto: CUDA, then MPS, then CPU]")
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@click.option("--name", "run_name", help="The run folder name under checkpoints/. [default: CORPUS-MODEL-TIME]")
@click.option("--resume", help="Continue a run (name or folder) from its last checkpoint; "
                               "--steps/--time/--eval-*/--device may change.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine (launches torchrun; one per GPU, or CPU processes).")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of the live display.")
@click.pass_context
def train(ctx: click.Context, corpus_name: str, preset: str, run_name: str | None, resume: str | None,
          nproc: int, plain: bool, **options: Any) -> None:
    """Train a recurrent language model; checkpoints go to checkpoints/RUN/.

    \b
    rnngen train                                           # cpu preset: 2x384 LSTM, 3 minutes
    rnngen train --model gru --layers 1 --hidden 256 --steps 2000
    rnngen train --corpus notes --time 600 --name notes-lstm
    rnngen train --resume notes-lstm --steps 5000          # continue where it stopped
    rnngen train --nproc 4                                 # data-parallel over 4 GPUs (or CPU processes)
    """
    from rnngen import distributed

    if nproc > 1 and not distributed.launched():
        _launch_torchrun(nproc)
    world = distributed.setup()
    finished = False
    try:
        _train(ctx, world, corpus_name, preset, run_name, resume, plain, options)
        finished = True
    finally:
        distributed.teardown(finished)


def _launch_torchrun(nproc: int) -> None:
    """Run this same command under torchrun with `nproc` processes, and exit with its status."""
    import subprocess

    args = sys.argv[1:]
    at = next(i for i, arg in enumerate(args) if arg == "--nproc" or arg.startswith("--nproc="))
    del args[at: at + (1 if "=" in args[at] else 2)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "rnngen", *args]
    sys.exit(subprocess.call(command))


def _train(ctx: click.Context, world: Any, corpus_name: str, preset: str, run_name: str | None, resume: str | None,
           plain: bool, options: dict[str, Any]) -> None:
    from rnngen import checkpoint, distributed
    from rnngen.corpus import Corpus
    from rnngen.display import TrainDisplay, err, out, summary_table
    from rnngen.runs import LAST, RunFolder, resolve
    from rnngen.train import Trainer, new_run_name, progress_of, stop_on_signals

    obj = ctx.obj
    given = {key for key, value in options.items()
             if value is not None and ctx.get_parameter_source(key) != click.core.ParameterSource.DEFAULT}
    resume_from = None
    if resume:
        run, _ = resolve(resume, obj["checkpoints"])
        resume_from = checkpoint.load(run.file(LAST))
        fixed = sorted(given - RESUMABLE)
        if corpus_name != "pydocs" and corpus_name != resume_from.corpus["name"]:
            fixed.append("corpus")
        if fixed:
            raise RnngenError(f"--resume keeps the run's model, data and optimizer settings; drop "
                              f"{', '.join('--' + name.replace('_', '-') for name in fixed)}, or start a new run")
        model_cfg = resume_from.model
        train_cfg = _train_config(resume_from.train.to_dict(), options, given)
        corpus = _resumed_corpus(resume_from, obj["corpora"])
        if progress_of(resume_from.step, resume_from.trainer["seconds"], train_cfg) >= 1.0:
            raise RnngenError(f"{run.name} already spent its budget at step {resume_from.step}: pass a larger "
                              f"--steps or --time to continue")
    else:
        import torch

        preset = preset if preset != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
        if world.main:  # one process prepares the embedded corpus; the others wait for it
            _prepare_default_corpus(obj, corpus_name)
        distributed.barrier()
        corpus = Corpus.find(obj["corpora"], corpus_name)
        model_cfg = ModelConfig(**{**PRESETS[preset]["model"],
                                   **{name: options[name] for name in MODEL_OPTIONS if name in given},
                                   "vocab_size": corpus.vocab_size})
        train_cfg = _train_config(PRESETS[preset]["train"], options, given)
        # Rank 0 names the run: the ranks' clocks may cross a second boundary apart.
        run = RunFolder(obj["checkpoints"] / distributed.broadcast(run_name or new_run_name(corpus.name, model_cfg.kind)))
        if distributed.broadcast(run.config_path.exists()):
            raise RnngenError(f"{run.path} already exists: continue it with --resume {run.name}, or pick another --name")
    budget = " or ".join(filter(None, [f"{train_cfg.steps} steps" if train_cfg.steps else "",
                                       f"{train_cfg.time_budget:g} s" if train_cfg.time_budget else ""]))
    display = TrainDisplay(plain or not world.main, budget)
    with stop_on_signals() as stop, display:
        trainer = Trainer(corpus, model_cfg, train_cfg, run, resume_from=resume_from, stop=stop, world=world,
                          on_event=display if world.main else None)
        try:
            summary = trainer.fit()
        except _oom_type() as exc:
            raise RnngenError(f"the GPU ran out of memory with --batch-size {train_cfg.batch_size} --seq-len "
                              f"{train_cfg.seq_len}: try --batch-size {max(1, train_cfg.batch_size // 2)}") from exc
    if world.main:
        out.print(summary_table(summary))
        err.print(f'complete with: rnngen complete --checkpoint {run.path} "Your prompt"')


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
    return TrainConfig(**values)


def _prepare_default_corpus(obj: dict[str, Any], name: str) -> None:
    """`rnngen train` on a fresh machine: prepare the embedded corpus when it is the one asked for."""
    from rnngen.display import err
    from rnngen.sources import DEFAULT_DATASET, SourceSpec

    if name == DEFAULT_DATASET and not (obj["corpora"] / name).exists():
        err.print(f"preparing the embedded corpus {DEFAULT_DATASET} (once; it needs no network)")
        _prepare(obj, SourceSpec(), "unigram", None, 0.1, None, False, False)


def _resumed_corpus(ckpt: Any, root: Path):
    from rnngen.corpus import Corpus
    from rnngen.errors import CheckpointError

    identity = ckpt.corpus
    path = Path(identity["path"])
    corpus = Corpus.open(path) if (path / "meta.json").exists() else Corpus.find(root, identity["name"])
    if corpus.meta["tokenizer"]["sha256"] != identity["tokenizer"]["sha256"]:
        raise CheckpointError(f"corpus {corpus.path} has a different tokenizer than the run was trained with: "
                              "resume with the corpus the run started on")
    return corpus


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_obj
def runs(obj: dict[str, Any], as_json: bool) -> None:
    """List training runs: model, corpus, steps, best validation bits per character."""
    from rnngen.display import runs_table
    from rnngen.runs import list_runs

    rows = []
    for run in list_runs(obj["checkpoints"]):
        try:
            config = run.config()
        except RnngenError:
            continue
        metrics = run.metrics()
        model = config["model"]
        evals = [row["val_bpc"] for row in metrics if row.get("event") == "eval"]
        size = sum(p.stat().st_size for p in run.path.glob("*.safetensors"))
        rows.append({"run": run.name, "model": f"{model['kind']} {model['layers']}x{model['hidden']}",
                     "corpus": config["corpus"]["name"], "steps": max((r.get("step", 0) for r in metrics), default=0),
                     "best": f"{min(evals):.4f}" if evals else "-", "size": f"{size / 1e6:.1f} MB",
                     "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.path.stat().st_mtime)),
                     "path": str(run.path)})
    _listing(rows, as_json, runs_table, f"no runs in {obj['checkpoints']} yet: run `rnngen train`")


# ---------------------------------------------------------------- using a model

@cli.command()
@click.option("--checkpoint", help="A run folder or name, or a .safetensors file. [default: the latest run's best]")
@click.option("--corpus", "corpus_name", help="A prepared corpus with the same tokenizer. [default: the run's corpus]")
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluate the first N tokens only; 0 is the whole split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def evaluate(obj: dict[str, Any], checkpoint: str | None, corpus_name: str | None, split: str, max_tokens: int,
             batch_size: int, seq_len: int, device: str, as_json: bool) -> None:
    """Loss, perplexity and bits per character of a checkpoint on a corpus split.

    \b
    rnngen evaluate                                  # the latest run, on its corpus's validation split
    rnngen evaluate --checkpoint notes-lstm --split train --max-tokens 100000
    """
    from rnngen import device as devices
    from rnngen.checkpoint import load_model
    from rnngen.corpus import Corpus
    from rnngen.display import out
    from rnngen.errors import CheckpointError
    from rnngen.runs import resolve
    from rnngen.train import evaluate as evaluate_split

    run, path = resolve(checkpoint, obj["checkpoints"])
    dev = devices.pick(device)
    model, tok, ckpt = load_model(run, path, dev)
    corpus = Corpus.find(obj["corpora"], corpus_name) if corpus_name else _resumed_corpus(ckpt, obj["corpora"])
    if corpus.meta["tokenizer"]["sha256"] != tok.sha256:
        raise CheckpointError(f"corpus {corpus.name} uses another tokenizer than {run.name}: pick a corpus "
                              "prepared with the run's tokenizer")
    result = evaluate_split(model, corpus.tokens(split), corpus.characters(split), batch_size, seq_len,
                            max_tokens or None, dev)
    result = {"checkpoint": str(path), "corpus": corpus.name, "split": split, **result}
    if as_json:
        click.echo(json.dumps(result))
        return
    out.print(f"{path} on {corpus.name}/{split}" + (f" (first {result['val_tokens']} tokens)" if result["bounded"] else ""))
    out.print(f"loss {result['val_loss']:.4f} nats/token   perplexity {result['val_ppl']:.2f}   "
              f"{result['val_bpc']:.4f} bits/char")


def main() -> None:
    """The console-script entry point."""
    cli(prog_name="rnngen")


# The commands of these modules register themselves on `cli`.
from rnngen import cli_complete, cli_lecture  # noqa: E402,F401
