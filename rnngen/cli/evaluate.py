"""`rnngen evaluate`: a checkpoint's loss and bits per character on a corpus split (`rnngen.evaluate`)."""

from __future__ import annotations

import click

from rnngen.cli.common import Paths, echo_json, pass_paths
from rnngen.config import DEVICES
from rnngen.evaluation import BATCH_SIZE, MAX_SEQ_LEN, MAX_TOKENS, SPLITS


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
    help="Evaluate the first N tokens only; 0 is the whole split, every token after the first scored once "
    "(on a large split, minutes to hours).",
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
    from rnngen.cli.display import EvaluateProgress, out
    from rnngen.evaluation import evaluate as evaluate_checkpoint

    with EvaluateProgress(plain=as_json) as progress:
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
        echo_json(result.to_dict())
        return
    read = f"its first {result.tokens + 1:,} tokens: --max-tokens 0 for the whole split" if result.bounded else "whole"
    out.print(f"{result.checkpoint} on {result.corpus}/{result.split} ({read}; {result.tokens:,} tokens predicted)")
    out.print(f"loss {result.loss:.4f} nats/token   perplexity {result.ppl:.2f}   {result.bpc:.4f} bits/char")
