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
    print_listing,
)
from rnngen.config import DEVICES, IMPLS, MAX_SEED, MIN_PROBED_BUDGET, MODEL_KINDS, PRECISIONS, PRESETS
from rnngen.errors import RnngenError
from rnngen.store.runs import DamagedRun, RunFolder, figures
from rnngen.training.trackers import parse_report_to, require


def _preset_help(section: str, key: str, text: str) -> str:
    values = ", ".join(
        f"{name} {'-' if value is None else value}"
        for name, preset in PRESETS.items()
        for value in [getattr(getattr(preset, section), key)]
    )
    return f"{text} [presets: {values}]"


@click.command("train")
@click.option(
    "--corpus",
    "corpus_name",
    default="pydocs",
    show_default=True,
    help="A prepared corpus (see `rnngen corpora`); the embedded pydocs is prepared when missing.",
)
@click.option(
    "--preset",
    type=click.Choice(["auto", *PRESETS]),
    default="auto",
    show_default=True,
    help="Sizes for the device: auto is gpu with CUDA, else cpu; tiny is a seconds-long smoke test.",
)
@click.option(
    "--model",
    "kind",
    type=click.Choice(MODEL_KINDS),
    help=_preset_help("model", "kind", "Recurrent layer type; mingru/minlstm train with a parallel scan."),
)
@click.option("--layers", type=click.IntRange(min=1), help=_preset_help("model", "layers", "Recurrent layers."))
@click.option("--hidden", type=click.IntRange(min=1), help=_preset_help("model", "hidden", "Hidden units per layer."))
@click.option("--embed", type=click.IntRange(min=1), help=_preset_help("model", "embed", "Embedding size."))
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    help=_preset_help("model", "dropout", "Dropout between layers and before the head."),
)
@click.option("--tie/--no-tie", default=None, help="Share the embedding with the output head. [default: tie]")
@click.option(
    "--impl",
    type=click.Choice(IMPLS),
    help="fused: PyTorch's layers (cuDNN); scratch: the lecture's cells unrolled in Python, slower, "
    "with the lecture's GRU (Cho et al.'s reset before the product, Chung et al.'s update). [default: fused]",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), help=_preset_help("train", "batch_size", "Streams per batch.")
)
@click.option(
    "--seq-len",
    type=click.IntRange(min=1),
    help=_preset_help("train", "seq_len", "Tokens per window of truncated backpropagation through time."),
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help=_preset_help("train", "lr", "Peak learning rate.")
)
@click.option("--warmup", type=click.IntRange(min=0), help=_preset_help("train", "warmup", "Linear warmup steps."))
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    help=_preset_help("train", "weight_decay", "AdamW weight decay of the weight matrices."),
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1),
    metavar="SHARE",
    help=_preset_help(
        "train",
        "ema",
        "Evaluate, sample and save a moving average of the weights whose time "
        "constant is this share of the run; 0 keeps the last weights.",
    ),
)
@click.option("--clip", type=click.FloatRange(min=0), help="Gradient-norm clipping; 0 turns it off. [default: 1.0]")
@click.option("--steps", type=Count(), help=_preset_help("train", "steps", "Stop after this many steps."))
@click.option(
    "--time",
    "time_budget",
    type=click.FloatRange(min=0, min_open=True),
    help=_preset_help(
        "train",
        "time_budget",
        "Stop after this many seconds of training. A time budget alone sizes the cpu preset's model for the tokens it "
        "buys on this machine (a few seconds' probe, counted in it; under "
        f"{MIN_PROBED_BUDGET:g} s, the smallest shape, unprobed); "
        "--steps, --model, --hidden, --embed, --layers, --batch-size or --seq-len keep the preset's shape.",
    ),
)
@click.option(
    "--eval-every", type=click.IntRange(min=1), help=_preset_help("train", "eval_every", "Steps between evaluations.")
)
@click.option(
    "--eval-tokens",
    type=click.IntRange(min=0),
    help=_preset_help("train", "eval_tokens", "Validation tokens per evaluation; 0 is the whole split."),
)
@click.option(
    "--samples/--no-samples",
    default=None,
    help="At each evaluation, show a 40-token completion of a fixed prompt (seeded, so samples compare "
    "across evaluations; stored in metrics.jsonl, not counted in --time). [default: samples]",
)
@click.option(
    "--sample-prompt",
    metavar="TEXT",
    help='The prompt of those samples. [default: "Studying Deep Learning is really" on pydocs, '
    "else the opening words of the validation text]",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    metavar="N",
    help="Stop after N evaluations in a row without a lower validation loss (best.safetensors keeps "
    "the best); 0 turns it off. [default: off]",
)
@click.option("--log-every", type=click.IntRange(min=1), help="Steps between metric lines. [default: 10]")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Random seed (weights, dropout). [default: 1337]")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train. [default: auto: CUDA, then MPS, then CPU]")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="The forward pass's arithmetic: bf16 autocast (weights stay float32) or float32; the run's first lines "
    "say which it uses and why. bf16 where the model cannot run in it (oneDNN's LSTM on a CPU without bf16) is "
    "refused. [default: auto: bf16 on CUDA GPUs since Ampere and on CPUs with AVX512-BF16 or AMX where the model "
    "runs in it, float32 elsewhere]",
)
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@click.option("--name", "run_name", help="The run folder name under checkpoints/. [default: CORPUS-MODEL-TIME]")
@click.option(
    "--resume",
    help="Continue a run (name or folder) from its last checkpoint; --steps/--time/--eval-*/"
    "--log-every/--device/--precision/--compile/--patience/--samples/--sample-prompt may change.",
)
@click.option(
    "--init-from",
    metavar="CHECKPOINT",
    help="Fine-tune: start a new run from this checkpoint's weights (a run, a .safetensors file or "
    "hf:USER/NAME) with its model sizes, a fresh optimizer and schedule; the corpus must use its "
    "tokenizer (`rnngen prepare --tokenizer-from`).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel processes on this machine (launches torchrun; one per GPU, or CPU processes).",
)
@click.option(
    "--report-to",
    metavar="TRACKERS",
    default="none",
    show_default=True,
    help="Also send the figures, samples and configuration to tensorboard (checkpoints/RUN/tensorboard/), wandb "
    '(WANDB_PROJECT, WANDB_MODE=offline), or both: "tensorboard,wandb". pip install "rnngen[tensorboard]".',
)
@click.option("--plain", is_flag=True, help="Plain progress lines instead of the live display.")
@click.pass_context
def train_command(
    ctx: click.Context,
    corpus_name: str,
    preset: str,
    run_name: str | None,
    resume: str | None,
    init_from: str | None,
    nproc: int,
    report_to: str,
    plain: bool,
    **options: Any,
) -> None:
    """Train a recurrent language model; checkpoints go to checkpoints/RUN/.

    \b
    rnngen train                                           # cpu preset: an LSTM sized for 3 minutes here
    rnngen train --model gru --layers 1 --hidden 256 --steps 2000
    rnngen train --corpus notes --time 600 --name notes-lstm
    rnngen train --resume notes-lstm --steps 5000          # continue where it stopped
    rnngen train --corpus my_texts --init-from notes-lstm --steps 500 --lr 1e-3   # fine-tune
    rnngen train --steps 20000 --patience 5                # stop once 5 evaluations bring no lower loss
    rnngen train --sample-prompt "The loss" --eval-every 50 # watch it learn to complete a prompt
    rnngen train --nproc 4                                 # data-parallel over 4 GPUs (or CPU processes)
    rnngen train --report-to tensorboard                   # then: tensorboard --logdir checkpoints
    """
    import rnngen
    from rnngen.cli.display import TrainDisplay, err, out, summary_table
    from rnngen.training import workers

    require(parse_report_to(report_to))  # before the corpus is prepared or processes launched
    if nproc > 1 and not workers.launched():
        from rnngen.training import distributed

        if not resume:  # a resumed run's device is its own, checked by each process once it is read
            distributed.check_gpus(nproc, options.get("device") or "auto")
        code, message = distributed.relaunch(nproc, sys.argv[1:])
        if message:
            err.print(message, soft_wrap=True)
        sys.exit(code)
    paths = ctx.find_object(Paths)
    overrides = {
        key: value
        for key, value in options.items()
        if value is not None and ctx.get_parameter_source(key) != click.core.ParameterSource.DEFAULT
    }
    corpus_named = ctx.get_parameter_source("corpus_name") != click.core.ParameterSource.DEFAULT
    main = workers.is_main_process()
    with TrainDisplay(plain or not main) as display:
        summary = rnngen.train(
            corpus_name if corpus_named or not (resume or init_from) else None,
            preset,
            name=run_name,
            resume=resume,
            init_from=init_from,
            corpora=paths.corpora,
            checkpoints=paths.checkpoints,
            on_event=display,
            report_to=report_to,
            **overrides,
        )
    if main:
        out.print(summary_table(summary.to_dict()))
        err.print(f'complete with: rnngen complete --checkpoint {summary.run} "Your prompt"')


@click.command()
@click.argument("names", metavar="[RUNS]...", nargs=-1)
@click.option(
    "--compare",
    is_flag=True,
    help="Compare RUNS: their summary figures in one table and their learning curves in one PNG (--out); "
    "pip install 'rnngen[plot]'.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.png"),
    show_default=True,
    help="The PNG that --compare writes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@pass_paths
def runs(paths: Paths, names: tuple[str, ...], compare: bool, out_path: Path, as_json: bool) -> None:
    """List training runs (all, or RUNS): model, corpus, steps, best validation bits per character.

    \b
    rnngen runs
    rnngen runs --compare notes-lstm notes-gru --out lstm-vs-gru.png   # one table, one PNG of their curves
    """
    from rnngen.cli.display import COMPARED, out, runs_table
    from rnngen.cli.main import flag
    from rnngen.store.resolve import resolve_checkpoint
    from rnngen.store.runs import list_runs

    if compare:
        if not names:
            raise RnngenError("name the runs to compare: rnngen runs --compare RUN [RUN]...")
        from rnngen.cli.analysis import draw_runs

        chosen = draw_runs(paths, names, out_path)
        print_listing(
            [_run_row(run) for run in chosen], as_json, lambda rows: runs_table(rows, COMPARED, "compared"), ""
        )
        if not as_json:
            out.print(f"wrote {out_path}")
        return
    if names:  # a run asked for by name that cannot be read (damaged, another format) is refused, saying why
        rows = [_run_row(resolve_checkpoint(name, paths.checkpoints)[0]) for name in names]
    else:
        rows = []
        for run in list_runs(paths.checkpoints):
            try:
                rows.append(_run_row(run))
            except DamagedRun as exc:  # on a row of its own: one damaged run hides no other
                rows.append(_run_row(run, exc.message(flag)))
            except RnngenError:  # another checkpoint format: left out here, refused by name
                continue
    print_listing(rows, as_json, runs_table, f"no runs in {paths.checkpoints} yet: run `rnngen train`")


def _run_row(run: RunFolder, damaged: str | None = None) -> dict[str, Any]:
    """A run's line of `rnngen runs`: its model, corpus, steps, best and last validation bits per character, the
    seconds it trained, its mean tokens/s, its checkpoints' size in bytes. Figures are numbers, None where the run
    has none. The row of a damaged run holds the error (`damaged`: what is damaged, how to fix it) and no figures."""
    row: dict[str, Any] = {
        "run": run.name,
        "damaged": damaged,
        "model": None,
        "corpus": None,
        "precision": None,
        "requested": None,
        "steps": None,
        "best": None,
        "last": None,
        "seconds": None,
        "tokens_per_s": None,
        "size_bytes": sum(p.stat().st_size for p in run.path.glob("*.safetensors") if p.is_file()),
        "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.path.stat().st_mtime)),
        "path": str(run.path),
    }
    if damaged:
        return row
    config, metrics = run.config(), run.metrics()
    model, arithmetic = config["model"], config.get("arithmetic")
    # metrics.jsonl may have been edited or cut short: only figures that are numbers count.
    evals = figures(metrics, "eval", "val_bpc")
    seconds, rates = figures(metrics, "train", "seconds"), figures(metrics, "train", "tokens_per_s")
    return row | {
        "model": f"{model.get('kind')} {model.get('layers')}x{model.get('hidden')}",
        "corpus": config["corpus"].get("name"),
        # What the run computed in (the arithmetic its request resolved to), and the request.
        "precision": arithmetic.get("precision") if isinstance(arithmetic, dict) else None,
        "requested": config["train"].get("precision"),
        "steps": max(figures(metrics, None, "step"), default=None),
        "best": run.best_val_bpc(),
        "last": evals[-1] if evals else None,
        "seconds": seconds[-1] if seconds else None,
        "tokens_per_s": sum(rates) / len(rates) if rates else None,
    }
