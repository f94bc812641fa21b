"""Which run folder and checkpoint file a `--checkpoint` argument names: a run, a file or `hf:USER/NAME`."""

from __future__ import annotations

import errno
from pathlib import Path

from rnngen.errors import CheckpointError
from rnngen.store import hub
from rnngen.store.runs import BEST, LAST, RUN_FILES, RunFolder, list_runs


def resolve_checkpoint(checkpoint: str | None, root: Path) -> tuple[RunFolder, Path]:
    """The run folder and checkpoint file a `--checkpoint` argument names.

    None: the most recent run under `root`. A run folder (or a run name under `root`): its best
    checkpoint, else its last. A file: that file, in its run folder. `hf:USER/NAME[@REVISION]`: the
    model's folder in the hub cache, downloaded once.
    """
    if checkpoint is not None and not checkpoint.strip():
        raise CheckpointError(
            f"the checkpoint is an empty name: pass a run name or folder (see `rnngen runs` for the runs in {root}), "
            "a .safetensors file or hf:USER/NAME"
        )
    if checkpoint is not None and checkpoint.startswith("hf:"):
        run = RunFolder(hub.download(checkpoint))
    elif checkpoint is None:
        runs = [run for run in list_runs(root) if run.file(BEST).exists() or run.file(LAST).exists()]
        if not runs:
            raise CheckpointError(f"no trained run in {root}: train one with `rnngen train`, or pass --checkpoint PATH")
        run = runs[-1]
    else:
        path = Path(checkpoint).expanduser()
        if not _exists(path) and _exists(Path(root) / checkpoint):
            path = Path(root) / checkpoint
        if _exists(path) and path.is_file():
            return RunFolder(path.parent), path
        if not _exists(path) or not path.is_dir():
            raise CheckpointError(
                f"no checkpoint or run folder at {checkpoint}: see `rnngen runs` for the runs in {root}"
            )
        run = RunFolder(path)
        # A folder under the runs' folder is a run, perhaps one that stopped before its first save; one elsewhere
        # is a run only when it holds a run's files.
        in_root = path.resolve().parent == Path(root).resolve()
        found = {child.name for child in path.iterdir()}
        if not run.config_path.exists() and not in_root and (not found or found - RUN_FILES):
            raise CheckpointError(
                f"{checkpoint} is a folder but not a run (no config.json): see `rnngen runs` for the runs in "
                f"{root}, or pass a .safetensors file"
            )
    for name in (BEST, LAST):
        if run.file(name).exists():
            return run, run.file(name)
    raise CheckpointError(
        f"{run.path} holds no checkpoint yet ({BEST} or {LAST}): its training stopped before "
        f"the first save; start it again with `rnngen train --name {run.name}` and its options"
    )


def require_tokenizer(run: RunFolder) -> None:
    """A one-line error naming the fix when the run's tokenizer.model is gone (completion and evaluation need it)."""
    if run.tokenizer_path.is_file():
        return
    try:
        corpus = run.config()["corpus"]["name"]
    except CheckpointError:
        corpus = None
    source = f"corpora/{corpus}/tokenizer.model" if corpus else "its corpus's"
    raise CheckpointError(
        f"{run.tokenizer_path} is missing: copy the tokenizer the run was trained with ({source}) into {run.path}"
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # a name too long for the file system names nothing there
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise
