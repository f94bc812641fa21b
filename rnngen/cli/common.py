"""What the command modules share: option types, the folders, the default corpus, listings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

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
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a count like 5000, 200k or 50M", param, ctx)
        if number < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return int(number)


def print_listing(rows: list[dict[str, Any]], as_json: bool, table: Any, empty: str) -> None:
    """Rows as JSON, as a table, or a line saying there are none."""
    from rnngen.cli.display import err, out

    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        err.print(empty)
    else:
        out.print(table(rows))


def prepare_default_corpus(obj: dict[str, Any], name: str) -> None:
    """`rnngen train` on a fresh machine: prepare the embedded corpus when it is the one asked for."""
    from rnngen.cli.display import err
    from rnngen.cli.prepare import prepare_corpus
    from rnngen.data.corpus import outdated
    from rnngen.data.sources import DEFAULT_DATASET, SourceSpec

    if name == DEFAULT_DATASET and (not (obj["corpora"] / name).exists() or outdated(obj["corpora"] / name)):
        err.print(f"preparing the embedded corpus {DEFAULT_DATASET} (once; it needs no network)")
        prepare_corpus(obj, SourceSpec(), "unigram", None, 0.1, None, False, False)


def run_corpus(ckpt: Any, root: Path):
    from rnngen.data.corpus import Corpus
    from rnngen.errors import CheckpointError

    identity = ckpt.corpus
    path = Path(identity["path"])
    corpus = Corpus.open(path) if (path / "meta.json").exists() else Corpus.find(root, identity["name"])
    if corpus.meta["tokenizer"]["sha256"] != identity["tokenizer"]["sha256"]:
        raise CheckpointError(f"corpus {corpus.path} has a different tokenizer than the run was trained with: "
                              "resume with the corpus the run started on")
    return corpus


