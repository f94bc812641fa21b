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
from rnngen.config import DEVICES, IMPLS, MODEL_KINDS, PRESETS, ModelConfig, SampleConfig, TrainConfig
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
    from rnngen.display import corpora_table, err, out

    metas = list_corpora(obj["corpora"])
    if as_json:
        click.echo(json.dumps(metas, indent=2))
    elif not metas:
        err.print(f"no corpora in {obj['corpora']} yet: run `rnngen prepare`")
    else:
        out.print(corpora_table(metas))


# ---------------------------------------------------------------- training

def _preset_help(section: str, key: str, text: str) -> str:
    values = ", ".join(f"{name} {preset[section].get(key)}" for name, preset in PRESETS.items())
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
@click.option("--model", "kind", type=click.Choice(MODEL_KINDS), help=_preset_help("model", "kind", "Recurrent layer type."))
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
    from rnngen.display import err, out, runs_table
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
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        err.print(f"no runs in {obj['checkpoints']} yet: run `rnngen train`")
    else:
        out.print(runs_table(rows))


# ---------------------------------------------------------------- the lecture, measured

@cli.command()
@click.option("--checkpoint", help="Measure a trained run (name, folder or .safetensors file).")
@click.option("--model", "kinds", default="rnn,lstm,gru", show_default=True,
              help="Without --checkpoint: fresh (untrained) models to compare, comma-separated.")
@click.option("--corpus", "corpus_name", default="pydocs", show_default=True,
              help="Where the window of tokens comes from (with --model).")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True, help="With --model.")
@click.option("--hidden", type=click.IntRange(min=1), default=128, show_default=True, help="With --model.")
@click.option("--length", type=click.IntRange(min=2), default=100, show_default=True, help="Window length T.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fresh models and the probes.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the curves as a PNG (needs matplotlib: pip install 'rnngen[plot]').")
@click.pass_obj
def gradients(obj: dict[str, Any], checkpoint: str | None, kinds: str, corpus_name: str, layers: int, hidden: int,
              length: int, seed: int, plot_path: Path | None) -> None:
    """Watch gradients vanish: ||dL_T/dh_t|| and ||dh_T/dh_t|| against the distance T - t.

    
    rnngen gradients                                        # fresh RNN, LSTM and GRU on pydocs
    rnngen gradients --checkpoint notes-lstm --length 200
    rnngen gradients --model rnn,lstm --hidden 256 --plot gradients.png
    """
    import torch

    from rnngen.checkpoint import load_model
    from rnngen.corpus import Corpus
    from rnngen.display import gradient_sparklines, gradient_table, out
    from rnngen.gradients import profile
    from rnngen.models import build
    from rnngen.runs import resolve

    if checkpoint:
        run, path = resolve(checkpoint, obj["checkpoints"])
        model, _, ckpt = load_model(run, path)
        corpus = _resumed_corpus(ckpt, obj["corpora"])
        models = [(f"{run.name} ({ckpt.model.kind})", model)]
    else:
        names = [name.strip() for name in kinds.split(",") if name.strip()]
        unknown = sorted(set(names) - set(MODEL_KINDS))
        if unknown or not names:
            raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: choose among {', '.join(MODEL_KINDS)}",
                                     param_hint="--model")
        _prepare_default_corpus(obj, corpus_name)
        corpus = Corpus.find(obj["corpora"], corpus_name)
        models = []
        for name in names:
            torch.manual_seed(seed)
            config = ModelConfig(kind=name, vocab_size=corpus.vocab_size, embed=hidden, hidden=hidden, layers=layers)
            models.append((name, build(config)))
    tokens = corpus.tokens("val")
    if len(tokens) < length + 1:
        raise RnngenError(f"the validation split of {corpus.name} has {len(tokens)} tokens: use --length "
                          f"{len(tokens) - 1} or less")
    ids = torch.from_numpy(tokens[: length + 1].astype("int64"))
    profiles = [profile(model, ids, label, seed=seed) for label, model in models]
    marks = sorted({d for d in (0, 10, 50) if d < length} | {length - 1})
    out.print(gradient_table(profiles, marks))
    out.print(gradient_sparklines(profiles))
    if plot_path:
        from rnngen.plot import gradient_curves

        gradient_curves(profiles, plot_path)
        out.print(f"wrote {plot_path}")


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("curves.png"),
              show_default=True, help="The PNG to write.")
@click.pass_obj
def plot(obj: dict[str, Any], runs: tuple[str, ...], out_path: Path) -> None:
    """Training and validation bits per character of RUNS, against steps and against time.

    
    rnngen plot pydocs-rnn-20261127-101500 pydocs-lstm-20261127-102000 --out rnn-vs-lstm.png
    """
    from rnngen.display import out
    from rnngen.plot import training_curves
    from rnngen.runs import resolve

    curves = []
    for name in runs:
        run, _ = resolve(name, obj["checkpoints"])
        corpus = run.config()["corpus"]
        chars = corpus.get("train_characters") or corpus["val_characters"]
        tokens = corpus["train_tokens"] if corpus.get("train_characters") else corpus["val_tokens"]
        curves.append((run.name, run.metrics(), tokens / chars))
    training_curves(curves, out_path)
    out.print(f"wrote {out_path}")


# ---------------------------------------------------------------- using a model

def sampling_options(command):
    """The options shared by `complete` and `chat`: which model, and how tokens are drawn."""
    options = [
        click.option("--checkpoint", help="A run folder or name, or a .safetensors file. [default: the latest run's best]"),
        click.option("--max-tokens", type=click.IntRange(min=1), default=200, show_default=True,
                     help="Tokens to generate."),
        click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True,
                     help="Softmax temperature; 0 is greedy decoding."),
        click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Sample among the k most likely tokens only; 0 is no limit."),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                     help="Sample among the most likely tokens that make up this much probability (nucleus)."),
        click.option("--repetition-penalty", type=click.FloatRange(min=0, min_open=True), default=1.0,
                     show_default=True, help="Divide the logits of tokens already present (CTRL); 1 is off."),
        click.option("--seed", type=int, help="Seed for reproducible samples."),
        click.option("--stop", multiple=True, help="End the completion before this string (repeatable)."),
        click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                     help="Where to run the model."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _sample_config(max_tokens: int, temperature: float, top_k: int, top_p: float, repetition_penalty: float,
                   seed: int | None, stop: tuple[str, ...]) -> SampleConfig:
    return SampleConfig(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        repetition_penalty=repetition_penalty, seed=seed, stop=stop)


@cli.command()
@click.argument("prompt", required=False)
@sampling_options
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True, help="Completions per prompt.")
@click.option("--beam", type=click.IntRange(min=1), help="Deterministic beam search with this many beams.")
@click.option("--length-penalty", type=float, default=1.0, show_default=True,
              help="With --beam: rank by logprob / ((5 + length) / 6) ** penalty; 0 ranks by logprob alone.")
@click.option("--show-probs", is_flag=True, help="Colour each token by the probability the model gave it.")
@click.option("--top-alternatives", type=click.IntRange(min=1),
              help="Also list, for each token, the K most likely tokens with their probabilities.")
@click.option("--plain", is_flag=True, help="Only the completion, no styling (the default when piped).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per completion.")
@click.pass_obj
def complete(obj: dict[str, Any], prompt: str | None, checkpoint: str | None, device: str, num_samples: int,
             beam: int | None, length_penalty: float, show_probs: bool, top_alternatives: int | None, plain: bool,
             as_json: bool, **sampling: Any) -> None:
    """Complete PROMPT with a trained model; `-` reads prompts from stdin, one per line.

    Without PROMPT on a terminal, opens an interactive session (as `rnngen chat`).

    \b
    rnngen complete "Studying Deep Learning is really"
    rnngen complete "The function" --temperature 0 --max-tokens 50
    rnngen complete "Returns" --top-p 0.9 --num-samples 3 --seed 1 --stop "."
    rnngen complete "The gradient" --beam 4 --max-tokens 30
    rnngen complete "The gradient" --show-probs --top-alternatives 3
    printf 'First prompt\\nSecond prompt\\n' | rnngen complete - --json
    """
    from rnngen.display import out

    if prompt is None:
        if sys.stdin.isatty() and out.is_terminal:
            return _chat(obj, checkpoint, device, False, sampling)
        raise click.UsageError("give a PROMPT to complete (\"\" for none), or - to read prompts from stdin")
    cfg = _sample_config(**sampling)
    prompts = [line.rstrip("\n") for line in sys.stdin] if prompt == "-" else [prompt]
    completer = _load_completer(obj, checkpoint, device)
    styled = not (plain or as_json) and out.is_terminal
    for prompt_text in prompts:
        if beam:
            _show_beams(completer, prompt_text, beam, cfg.max_tokens, length_penalty, styled, as_json)
        else:
            _show_samples(completer, prompt_text, cfg, num_samples, show_probs, top_alternatives or 0, styled,
                          as_json)


def _show_beams(completer: Any, prompt: str, beams: int, max_tokens: int, length_penalty: float, styled: bool,
                as_json: bool) -> None:
    from rnngen.display import beams_table, out

    found = completer.beam_search(prompt, beams, max_tokens, length_penalty)
    if as_json:
        for rank, found_beam in enumerate(found):
            click.echo(json.dumps({"prompt": prompt, "beam": rank, "completion": found_beam.text,
                                   "tokens": len(found_beam.tokens), "logprob": found_beam.logprob,
                                   "score": found_beam.score}))
    elif styled and len(found) > 1:
        out.print(beams_table(prompt, found))
    else:
        click.echo(found[0].text)


def _show_samples(completer: Any, prompt: str, cfg: SampleConfig, num_samples: int, show_probs: bool,
                  alternatives: int, styled: bool, as_json: bool) -> None:
    from rnngen.display import alternatives_table, out, probability_legend, probs_text, samples_table
    from rnngen.generate import make_generator

    # One generator for all prompts and samples: --num-samples 3 gives three different completions.
    generator = make_generator(cfg.seed, completer.device)
    streamed = styled and num_samples == 1 and not show_probs
    texts = []
    for sample in range(num_samples):
        completion = completer.complete(prompt, cfg, generator, alternatives=alternatives)
        if as_json:
            row = {"prompt": prompt, "sample": sample, "completion": completion.text(),
                   "tokens": len(completion.tokens), "stop_reason": completion.reason}
            if show_probs or alternatives:
                row["steps"] = [{"token": step.text, "prob": step.prob,
                                 **({"alternatives": step.alternatives} if alternatives else {})}
                                for step in completion.steps]
            click.echo(json.dumps(row))
        elif streamed:
            out.print(prompt, style="bold", end="", markup=False)
            for piece in completion:
                out.print(piece, style="cyan", end="", markup=False)
            out.print()
        elif show_probs or alternatives:
            completion.text()
            out.print(probs_text(prompt, completion.steps) if show_probs else prompt + "".join(
                step.text for step in completion.steps), markup=False)
            if show_probs:
                out.print(probability_legend())
            if alternatives:
                out.print(alternatives_table(completion.steps))
        elif styled:
            texts.append(completion.text())
        else:
            for piece in completion:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
    if texts:
        out.print(samples_table(prompt, texts))


@cli.command()
@sampling_options
@click.option("--keep/--no-keep", default=False, show_default=True,
              help="Carry the model's state from one turn to the next (toggle with /keep).")
@click.pass_obj
def chat(obj: dict[str, Any], checkpoint: str | None, device: str, keep: bool, **sampling: Any) -> None:
    """An interactive session: the model loads once, each line you type is completed.

    \b
    /temperature 0.7, /top-k 20, /top-p 0.9, /max-tokens 100, /repetition-penalty 1.2, /seed 1
    /keep (a running text across turns), /reset, /settings, /help, /quit (or Ctrl-D)
    Ctrl-C stops the completion being written, not the session; the arrow keys recall earlier lines.
    """
    _chat(obj, checkpoint, device, keep, sampling)


def _chat(obj: dict[str, Any], checkpoint: str | None, device: str, keep: bool, sampling: dict[str, Any]) -> None:
    from rnngen.chat import ChatSession
    from rnngen.display import out

    if sys.stdin.isatty():
        import readline  # noqa: F401  (gives input() line editing and history with the arrow keys)
    completer = _load_completer(obj, checkpoint, device)
    ChatSession(completer, _sample_config(**sampling), out, keep=keep).run()


def _load_completer(obj: dict[str, Any], checkpoint_arg: str | None, device_name: str):
    from rnngen import device
    from rnngen.checkpoint import load_model
    from rnngen.generate import Completer
    from rnngen.runs import resolve

    run, path = resolve(checkpoint_arg, obj["checkpoints"])
    dev = device.pick(device_name)
    model, tok, ckpt = load_model(run, path, dev)
    return Completer(model, tok, dev, start_with_eot=ckpt.corpus.get("train_documents", 1) > 0)


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
