"""`rnngen prepare` and `rnngen corpora`: text in, tokenizer and token arrays out."""

from __future__ import annotations

import click

from rnngen.cli.common import Count, Paths, pass_paths, print_listing


@click.command()
@click.option(
    "--dataset",
    default="pydocs",
    show_default=True,
    help="A hub id (Salesforce/wikitext), a local file (.txt .md .json .jsonl .csv .parquet), a folder of such "
    "files (all read, text files first, then JSON, CSV, Parquet), or `pydocs`, the embedded docstring corpus that "
    "needs no network.",
)
@click.option("--config", "config_name", help="The dataset's config (subset), e.g. wikitext-2-raw-v1.")
@click.option("--revision", help="A hub branch, tag or commit, e.g. refs/convert/parquet.")
@click.option("--split", default="train", show_default=True, help="The split to train on.")
@click.option(
    "--val-split",
    help="The split to validate on. [default: validation or valid when present, else the "
    "held-out tail of the train split; a test split only when named here]",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Held out from the end of the text when the dataset has no validation split.",
)
@click.option("--text-column", help="The column holding the text. [default: `text`, or the only string column]")
@click.option(
    "--documents",
    type=click.Choice(["auto", "rows", "lines", "paragraphs", "articles"]),
    default="auto",
    show_default=True,
    help="What one document is: rows = as stored (one per text file, one per dataset row); lines = each "
    "line (names, titles, jokes); paragraphs = text between blank lines; articles = rows joined and "
    "cut at ` = Title = ` heading lines (wikitext, as rows or as a text file); auto = rows, or articles when the "
    "rows are the lines of such a text.",
)
@click.option(
    "--streaming", is_flag=True, help="Stream the dataset instead of downloading it whole; memory stays flat."
)
@click.option("--max-chars", type=Count(), help="Read at most this many characters per split (e.g. 50M).")
@click.option(
    "--tokenizer",
    "tokenizer_kind",
    type=click.Choice(["unigram", "bpe", "char", "word"]),
    default="unigram",
    show_default=True,
    help="The sentencepiece model type. `word`: whole words; a word outside the vocabulary becomes the "
    "unknown id (shown as ⁇), so decoding no longer gives the text back exactly.",
)
@click.option(
    "--tokenizer-from",
    metavar="RUN_OR_CORPUS",
    help="Encode with the tokenizer of a run, a corpus or a tokenizer.model file instead of training one, "
    "so that the vocabularies match (to train or evaluate that run on this corpus).",
)
@click.option("--vocab-size", type=click.IntRange(min=8), help="Vocabulary size. [default: sized to the corpus]")
@click.option("--name", help="The corpus folder name. [default: derived from the dataset]")
@click.option("--force", is_flag=True, help="Rebuild even if a corpus with this name exists.")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of live bars.")
@pass_paths
def prepare(
    paths: Paths,
    dataset: str,
    config_name: str | None,
    revision: str | None,
    split: str,
    val_split: str | None,
    val_fraction: float,
    text_column: str | None,
    documents: str,
    streaming: bool,
    max_chars: int | None,
    tokenizer_kind: str,
    tokenizer_from: str | None,
    vocab_size: int | None,
    name: str | None,
    force: bool,
    plain: bool,
) -> None:
    """Turn a text dataset into a tokenizer and token arrays under corpora/NAME/.

    \b
    rnngen prepare                                        # the embedded pydocs corpus, offline
    rnngen prepare --dataset Salesforce/wikitext --config wikitext-2-raw-v1   # rows joined into articles
    rnngen prepare --dataset names.txt --documents lines  # one document per line
    rnngen prepare --dataset roneneldan/TinyStories --streaming --max-chars 50M
    rnngen prepare --dataset ./my_texts/                  # a folder of .txt/.jsonl/.parquet files, all read
    rnngen prepare --dataset notes.txt --tokenizer char --name notes
    rnngen prepare --dataset more_notes/ --tokenizer-from notes-lstm   # the run's vocabulary
    """
    from rnngen.cli.display import PrepareProgress, corpus_table, err, out
    from rnngen.pipeline import prepare as prepare_corpus

    given = click.get_current_context().get_parameter_source("tokenizer_kind") != click.core.ParameterSource.DEFAULT
    with PrepareProgress(plain) as progress:
        prepared = prepare_corpus(
            dataset,
            name=name,
            config=config_name,
            revision=revision,
            split=split,
            val_split=val_split,
            val_fraction=val_fraction,
            text_column=text_column,
            documents=documents,
            streaming=streaming,
            max_chars=max_chars,
            tokenizer=tokenizer_kind if given else None,
            vocab_size=vocab_size,
            tokenizer_from=tokenizer_from,
            force=force,
            corpora=paths.corpora,
            checkpoints=paths.checkpoints,
            progress=progress,
        )
    reused = not progress.tasks  # no stage ran: nothing was built
    (err if reused else out).print(corpus_table(prepared.meta, reused))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the corpora's meta as JSON.")
@pass_paths
def corpora(paths: Paths, as_json: bool) -> None:
    """List the prepared corpora."""
    from rnngen.cli.display import corpora_table
    from rnngen.data.reading import list_corpora

    print_listing(
        list_corpora(paths.corpora), as_json, corpora_table, f"no corpora in {paths.corpora} yet: run `rnngen prepare`"
    )
