"""`rnngen gradients` and `rnngen plot`: the lecture's vanishing gradients and training curves, measured."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rnngen.cli.common import (
    Paths,
    pass_paths,
    require_folder_of,
)
from rnngen.config import MODEL_KINDS, ModelConfig
from rnngen.errors import RnngenError
from rnngen.lab.limits import MAX_LENGTH

if TYPE_CHECKING:
    from rnngen.store.runs import RunFolder


@click.command()
@click.option("--checkpoint", help="Measure a trained run (name, folder, .safetensors file or hf:USER/NAME).")
@click.option(
    "--model",
    "kinds",
    default="rnn,lstm,gru",
    show_default=True,
    help="Without --checkpoint: fresh (untrained) models to compare, comma-separated.",
)
@click.option(
    "--corpus",
    "corpus_name",
    default="pydocs",
    show_default=True,
    help="Where the window of tokens comes from (with --model).",
)
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True, help="With --model.")
@click.option("--hidden", type=click.IntRange(min=1), default=128, show_default=True, help="With --model.")
@click.option(
    "--length",
    type=click.IntRange(min=2, max=MAX_LENGTH),
    default=100,
    show_default=True,
    help=f"Window length T, at most {MAX_LENGTH} (as `rnngen lab gradients`): memory and time grow with it.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fresh models and the probes.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the curves as a PNG (needs matplotlib: pip install 'rnngen[plot]').",
)
@pass_paths
def gradients(
    paths: Paths,
    checkpoint: str | None,
    kinds: str,
    corpus_name: str,
    layers: int,
    hidden: int,
    length: int,
    seed: int,
    plot_path: Path | None,
) -> None:
    """Watch gradients vanish: ||dL_T/dh_t|| and ||dh_T/dh_t|| against the distance T - t.

    
    rnngen gradients                                        # fresh RNN, LSTM and GRU on pydocs
    rnngen gradients --checkpoint notes-lstm --length 200
    rnngen gradients --model rnn,lstm --hidden 256 --plot gradients.png
    """
    import torch

    from rnngen.analysis.gradients import profile
    from rnngen.cli.display import PrepareProgress, corpus_table, err, gradient_sparklines, gradient_table, out
    from rnngen.data.preparing import ensure_default, folder_name
    from rnngen.data.reading import Corpus, corpus_of
    from rnngen.data.sources import DEFAULT_DATASET
    from rnngen.models import build
    from rnngen.models.checkpoint import load_model
    from rnngen.store.resolve import resolve_checkpoint

    if plot_path:
        from rnngen.analysis.plot import check_image_path

        require_folder_of(plot_path, "--plot")
        check_image_path(plot_path, "--plot")
    if checkpoint:
        run, path = resolve_checkpoint(checkpoint, paths.checkpoints)
        model, _, ckpt = load_model(run, path)
        corpus = corpus_of(ckpt.corpus, paths.corpora)
        models = [(f"{run.name} ({ckpt.model.kind})", model)]
    else:
        names = [name.strip() for name in kinds.split(",") if name.strip()]
        unknown = sorted(set(names) - set(MODEL_KINDS))
        if unknown or not names:
            raise click.BadParameter(
                f"{', '.join(unknown) or 'nothing'}: choose among {', '.join(MODEL_KINDS)}", param_hint="--model"
            )
        if corpus_name == DEFAULT_DATASET:  # prepared once, when missing, as `rnngen train` prepares it
            with PrepareProgress(False) as progress:
                prepared = ensure_default(paths.corpora, progress, lambda line: err.print(line, markup=False))
            if prepared is not None:
                out.print(corpus_table(prepared.meta, False))
        corpus = Corpus.find(paths.corpora, folder_name(paths.corpora, corpus_name))
        models = []
        for name in names:
            torch.manual_seed(seed)
            config = ModelConfig(kind=name, vocab_size=corpus.vocab_size, embed=hidden, hidden=hidden, layers=layers)
            models.append((name, build(config)))
    tokens = corpus.tokens("val")
    if len(tokens) < length + 1:
        raise RnngenError(
            f"the validation split of {corpus.name} has {len(tokens)} tokens: use --length {len(tokens) - 1} or less"
        )
    ids = torch.from_numpy(tokens[: length + 1].astype("int64"))
    profiles = [profile(model, ids, label, seed=seed) for label, model in models]
    marks = sorted({d for d in (0, 10, 50) if d < length} | {length - 1})
    out.print(gradient_table(profiles, marks))
    out.print(gradient_sparklines(profiles))
    if plot_path:
        from rnngen.analysis.plot import gradient_curves

        gradient_curves(profiles, plot_path)
        out.print(f"wrote {plot_path}")


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("curves.png"),
    show_default=True,
    help="The PNG to write.",
)
@pass_paths
def plot(paths: Paths, runs: tuple[str, ...], out_path: Path) -> None:
    """Training and validation bits per character of RUNS, against steps and against time.

    
    rnngen plot pydocs-rnn-20261127-101500 pydocs-lstm-20261127-102000 --out rnn-vs-lstm.png
    """
    from rnngen.cli.display import out

    draw_runs(paths, runs, out_path)
    out.print(f"wrote {out_path}")


def draw_runs(paths: Paths, names: tuple[str, ...], out_path: Path) -> list[RunFolder]:
    """Draw the curves of the runs `names` into `out_path` (`rnngen plot`, `rnngen runs --compare`) and return
    the runs; a missing folder, a format matplotlib does not write or matplotlib missing is refused before any run
    is read."""
    from rnngen.analysis.plot import check_image_path, training_curves
    from rnngen.store.resolve import resolve_checkpoint

    require_folder_of(out_path, "--out")
    check_image_path(out_path, "--out")
    chosen = [resolve_checkpoint(name, paths.checkpoints)[0] for name in names]
    training_curves(chosen, out_path)
    return chosen
