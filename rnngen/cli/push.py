"""`rnngen push`: share a run on the Hugging Face Hub."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from rnngen.cli.common import Paths, pass_paths


@click.command()
@click.argument("run")
@click.argument("repo_id", metavar="USER/NAME")
@click.option("--private", is_flag=True, help="Create the hub repository as private.")
@click.option(
    "--dry-run",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the folder that would be uploaded here (weights, config, tokenizer, model card) and stop.",
)
@pass_paths
def push(paths: Paths, run: str, repo_id: str, private: bool, dry_run: Path | None) -> None:
    """Upload RUN's best checkpoint, config, tokenizer and a model card to the hub as USER/NAME.

    The token comes from HF_TOKEN or `huggingface-cli login`; rnngen never stores one. Anyone can
    then use the model with --checkpoint hf:USER/NAME (complete, chat, evaluate, train --init-from).

    \b
    rnngen push notes-lstm alice/notes-lstm
    rnngen push notes-lstm alice/notes-lstm --private
    rnngen push notes-lstm alice/notes-lstm --dry-run upload/    # look at the model card first
    rnngen complete --checkpoint hf:alice/notes-lstm "The gradient"
    """
    from rnngen.cli.display import err, out
    from rnngen.data.tokenizer import load_checked
    from rnngen.store import hub
    from rnngen.store.resolve import resolve_checkpoint

    folder, _ = resolve_checkpoint(run, paths.checkpoints)
    best = hub.check_upload(folder, repo_id)
    # The check `complete` makes: what is uploaded is the tokenizer the weights were trained with.
    load_checked(folder.tokenizer_path, best.corpus, best.model.vocab_size)
    if dry_run is not None:
        hub.upload_folder(folder, repo_id, dry_run)
        out.print(
            f"wrote {', '.join(sorted(p.name for p in dry_run.iterdir()))} to {dry_run}; "
            f"push without --dry-run to upload",
            markup=False,
        )
        return
    with tempfile.TemporaryDirectory(prefix="rnngen-push-") as staging:
        hub.upload_folder(folder, repo_id, Path(staging))
        err.print(f"uploading {folder.name} to {repo_id}", markup=False)
        url = hub.push(Path(staging), repo_id, private)
    out.print(f"pushed {folder.name} to {url}; use it with --checkpoint hf:{repo_id}", markup=False)
