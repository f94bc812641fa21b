"""`rnngen evaluate`: a checkpoint's loss and bits per character on a corpus split."""

from __future__ import annotations

import json

import click

from rnngen.cli.common import Paths, pass_paths
from rnngen.config import DEVICES
from rnngen.errors import RnngenError


@click.command()
@click.option(
    "--checkpoint",
    help="A run folder or name, a .safetensors file, or hf:USER/NAME[@REVISION] from the "
    "Hugging Face Hub. [default: the latest run's best]",
)
@click.option("--corpus", "corpus_name", help="A prepared corpus with the same tokenizer. [default: the run's corpus]")
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Evaluate the first N tokens only; 0 is the whole split.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=256, show_default=True)
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
    seq_len: int,
    device: str,
    as_json: bool,
) -> None:
    """Loss, perplexity and bits per character of a checkpoint on a corpus split.

    \b
    rnngen evaluate                                  # the latest run, on its corpus's validation split
    rnngen evaluate --checkpoint notes-lstm --split train --max-tokens 100000
    """
    from rnngen.cli.display import out
    from rnngen.data.reading import Corpus, corpus_of
    from rnngen.models import device as devices
    from rnngen.models.checkpoint import load_model
    from rnngen.store.resolve import require_tokenizer, resolve_checkpoint
    from rnngen.store.runs import require_same_tokenizer
    from rnngen.training.evaluate import evaluate as evaluate_split

    if max_tokens == 1:
        raise RnngenError(
            "--max-tokens 1 leaves no token to predict (the first is context only): "
            "pass 2 or more, or 0 for the whole split"
        )
    run, path = resolve_checkpoint(checkpoint, paths.checkpoints)
    require_tokenizer(run)
    dev = devices.pick(device)
    model, tok, ckpt = load_model(run, path, dev)
    corpus = Corpus.find(paths.corpora, corpus_name) if corpus_name else corpus_of(ckpt.corpus, paths.corpora)
    require_same_tokenizer(
        f"corpus {corpus.name}",
        corpus.meta["tokenizer"],
        {"sha256": tok.sha256, "vocab_size": tok.vocab_size},
        f"pick a corpus prepared with the tokenizer of {run.name}",
    )
    result = evaluate_split(
        model,
        corpus.tokens(split),
        corpus.characters(split),
        batch_size,
        seq_len,
        max_tokens or None,
        dev,
        unknown_bytes=corpus.unknown_bytes(split),
    )
    result = {"checkpoint": str(path), "corpus": corpus.name, "split": split, **result}
    if as_json:
        click.echo(json.dumps(result))
        return
    out.print(
        f"{path} on {corpus.name}/{split}" + (f" (first {result['val_tokens']} tokens)" if result["bounded"] else "")
    )
    out.print(
        f"loss {result['val_loss']:.4f} nats/token   perplexity {result['val_ppl']:.2f}   "
        f"{result['val_bpc']:.4f} bits/char"
    )
