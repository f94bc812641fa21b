"""`rnngen evaluate`: a checkpoint's loss and bits per character on a corpus split (`rnngen.evaluate`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from rnngen.cli.common import Paths, echo_json, pass_paths
from rnngen.config import DEVICES
from rnngen.evaluation import BATCH_SIZE, MAX_SEQ_LEN, MAX_TOKENS, SPLITS

# Under --json (or without a terminal) progress is a line on stderr every LINE_SECONDS, and one at the end when
# there were any: a short evaluation prints nothing but its result.
LINE_SECONDS = 5.0


@click.command()
@click.option(
    "--checkpoint",
    help="A run folder or name, a .safetensors file, or hf:USER/NAME[@REVISION] from the "
    "Hugging Face Hub. [default: the latest run's best]",
)
@click.option("--corpus", "corpus_name", help="A prepared corpus with the same tokenizer. [default: the run's corpus]")
@click.option("--split", type=click.Choice(SPLITS), default=SPLITS[0], show_default=True)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=0),
    default=MAX_TOKENS,
    show_default=True,
    help="Evaluate the first N tokens only; 0 is the whole split (on a large split, minutes to hours).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True)
@click.option(
    "--seq-len",
    type=click.IntRange(min=1),
    help=f"Tokens read of each row at a time. [default: at most {MAX_SEQ_LEN}, fewer for a large vocabulary, so "
    "that memory stays bounded]",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_paths
def evaluate(
    paths: Paths,
    checkpoint: str | None,
    corpus_name: str | None,
    split: str,
    max_tokens: int,
    batch_size: int,
    seq_len: int | None,
    device: str,
    as_json: bool,
) -> None:
    """Loss, perplexity and bits per character of a checkpoint on a corpus split (its first 1M tokens by default).

    \b
    rnngen evaluate                                  # the latest run, on its corpus's validation split
    rnngen evaluate --checkpoint notes-lstm --split train --max-tokens 100000
    rnngen evaluate --max-tokens 0 --json            # the whole split; progress lines on stderr
    """
    from rnngen.cli.display import out
    from rnngen.evaluation import evaluate as evaluate_checkpoint

    with _progress(as_json) as progress:
        result = evaluate_checkpoint(
            checkpoint,
            corpus=corpus_name,
            split=split,
            max_tokens=max_tokens,
            batch_size=batch_size,
            seq_len=seq_len,
            device=device,
            corpora=paths.corpora,
            checkpoints=paths.checkpoints,
            progress=progress,
        )
    if as_json:
        echo_json(dataclasses.asdict(result))
        return
    bound = f" (first {result.val_tokens:,} tokens: --max-tokens 0 for the whole split)" if result.bounded else ""
    out.print(f"{result.checkpoint} on {result.corpus}/{result.split}{bound}")
    out.print(
        f"loss {result.val_loss:.4f} nats/token   perplexity {result.val_ppl:.2f}   {result.val_bpc:.4f} bits/char"
    )


@contextmanager
def _progress(as_json: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress callback for `rnngen.evaluate`: a live bar on a terminal, else (and under --json) a line on
    stderr every LINE_SECONDS, so that stdout holds only the result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from rnngen.cli.display import err

    if not as_json and err.is_terminal:
        bar = Progress(
            "evaluating", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=err
        )
        task = bar.add_task("evaluate", total=None)
        with bar:
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    started = last = time.monotonic()

    def line(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LINE_SECONDS or (done == total and last > started):
            last = now
            click.echo(f"evaluated {done:,} of {total:,} tokens ({done / total:.0%}, {now - started:.0f} s)", err=True)

    yield line
