"""Which run folder and checkpoint file a `--checkpoint` argument names: a run, a file or `hf:USER/NAME`."""

from __future__ import annotations

import errno
import json
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
        path = _named_path(checkpoint, Path(root))
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


def _named_path(checkpoint: str, root: Path) -> Path:
    """The file or folder `checkpoint` names: a path, else a run under `root`. A bare name (no folder in it) that
    is both a run under `root` and a file or folder here names the one that is a run, as `rnngen runs` lists it;
    when both are, the error names both."""
    here, under_root = Path(checkpoint).expanduser(), root / checkpoint
    if not _exists(here):
        return under_root if _exists(under_root) else here
    if Path(checkpoint).name != checkpoint or not _exists(under_root) or _same(here, under_root):
        return here
    runs = [path for path in (under_root, here) if _holds_run(path)]
    if len(runs) == 2:
        raise CheckpointError(
            f"{checkpoint} names two runs, {under_root} and {here.resolve()}: pass the one you mean as a path, "
            f"{under_root} or ./{checkpoint}"
        )
    return runs[0] if runs else here


def _holds_run(path: Path) -> bool:
    """Whether `path` is a checkpoint file or a folder holding a run's checkpoints or its configuration (a
    config.json rnngen wrote, not another tool's, such as a Hugging Face model's)."""
    if path.is_file():
        return path.suffix == ".safetensors"
    if any((path / name).is_file() for name in (BEST, LAST)):
        return True
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "rnngen_version" in config


def _same(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # a name too long for the file system names nothing there
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise
