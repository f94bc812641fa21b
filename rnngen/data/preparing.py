"""`prepare()`: a source in, a corpus folder `root/<name>/` out, as one transaction; and the embedded corpus,
prepared when missing; one another recipe made is kept, and this recipe's prepared beside it (`default_name`).

The corpus is built (rnngen.data.building) in a temporary folder of this process and renamed into
place at the end, so an interrupted prepare leaves no half corpus behind; a lock per name refuses a
second prepare of the same name while the first runs; a rerun with the same request reuses the corpus.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rnngen.data import sources
from rnngen.data.building import build_corpus
from rnngen.data.encoding import ProgressFn
from rnngen.data.reading import Corpus, claim_corpus
from rnngen.data.sources import SourceSpec
from rnngen.data.tokenizer import Tokenizer
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CorpusError, param
from rnngen.interrupts import sigterm_raises
from rnngen.store.atomic import write_json_atomic
from rnngen.store.lock import Lock, alive
from rnngen.store.names import MAX_NAME_CHARS, check_name

TEMP_PREFIX = ".tmp-"
OLD_MARK = "-old-"  # `.tmp-NAME-old-PID`: the corpus a `--force` prepare is replacing
# Errors of writing that a user fixes by freeing space or choosing another folder.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)


def name_for(dataset: str, config: str | None) -> str:
    """A folder name for a dataset: `Salesforce/wikitext` + `wikitext-2-raw-v1` -> `wikitext-2-raw-v1`."""
    if sources.is_local(dataset):
        base = Path(dataset).expanduser().resolve().stem
    else:
        base = dataset.rstrip("/").split("/")[-1]
    if config and config not in base:
        base = f"{base}-{config}" if not config.startswith(base) else config
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._").lower()[:MAX_NAME_CHARS].rstrip("-._") or "corpus"


def prepare(
    spec: SourceSpec,
    tok_spec: TokenizerSpec = TokenizerSpec(),
    *,
    root: Path,
    name: str | None = None,
    val_fraction: float = 0.1,
    force: bool = False,
    threads: int | None = None,
    progress: ProgressFn = lambda stage, done, total: None,
) -> tuple[Corpus, bool]:
    """Build `root/<name>/` from `spec` and return it with whether an existing one was reused.

    The corpus is built in a temporary folder of this process and renamed into place at the end, so
    an interrupted prepare leaves no half corpus behind; a lock per name refuses a second prepare of
    the same name while the first runs.
    """
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"{param('val_fraction')} must be between 0 and 1, got {val_fraction}")
    if spec.max_chars is not None and (not isinstance(spec.max_chars, int) or spec.max_chars < 1):
        raise CorpusError(
            f"{param('max_chars')} must be a whole number of characters of at least 1, got {spec.max_chars}"
        )
    if name is None:
        name = default_name(root) if spec.dataset == sources.DEFAULT_DATASET else name_for(spec.dataset, spec.config)
    name = check_name(name)
    target = Path(root) / name
    request = {"source": asdict(spec), "tokenizer": asdict(tok_spec), "val_fraction": val_fraction}
    if tok_spec.from_path:
        # Checked before anything is built; its hash tells a rerun with a changed tokenizer from a cached one.
        request["tokenizer"] = {
            "from_path": tok_spec.from_path,
            "sha256": Tokenizer.load(Path(tok_spec.from_path)).sha256,
        }
    cleanup = _RemovedIfLeftEmpty(Path(root))
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        lock = _lock(Path(root), name)
    except OSError as exc:
        raise CorpusError(
            f"cannot write to {root}: {exc.strerror}: choose another folder as {param('corpora')}"
        ) from exc
    with cleanup, lock, sigterm_raises():
        _restore_moved_aside(Path(root), name)
        _remove_stale_temporaries(Path(root))
        if target.exists() and not force:
            if outdated(target):
                raise CorpusError(
                    f"{target} holds the embedded corpus of another rnngen's recipe, which the runs trained on "
                    f"it need as it is: leave out {param('name')} to prepare this rnngen's beside it, or pass "
                    f"{param('force')} to rebuild it in place (its runs can then neither resume nor be evaluated)"
                )
            existing = Corpus.open(target)
            if existing.meta["request"] == request:
                return existing, True
            raise CorpusError(
                f"{target} already holds a corpus prepared with other arguments: pass {param('force')} "
                f"to rebuild it, or another {param('name')} to keep both"
            )
        work = Path(root) / f"{TEMP_PREFIX}{name}-{os.getpid()}"
        # Refused while a run trains on the corpus this would replace; runs wait for this one in turn.
        in_use = (claim_corpus(target, replacing=True) if target.is_dir() else None) or contextlib.nullcontext()
        try:
            shutil.rmtree(work, ignore_errors=True)  # left by a dead process whose id this one now has
            work.mkdir()
            with in_use:
                _build_into(spec, tok_spec, work, target, name, request, val_fraction, threads, progress)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise CorpusError(
                f"cannot write corpus {name} in {root}: {exc.strerror}: free some space or choose "
                f"another folder as {param('corpora')}"
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return Corpus.open(target), False


def _build_into(
    spec: SourceSpec,
    tok_spec: TokenizerSpec,
    work: Path,
    target: Path,
    name: str,
    request: dict[str, Any],
    val_fraction: float,
    threads: int | None,
    progress: ProgressFn,
) -> None:
    """Build the corpus in `work`, then put it in place of `target`."""
    started = time.time()
    meta = build_corpus(spec, tok_spec, work, val_fraction, threads or os.cpu_count() or 1, progress)
    shutil.rmtree(work / ".datasets-cache", ignore_errors=True)
    meta.update(name=name, request=request, seconds=round(time.time() - started, 2))
    write_json_atomic(work / "meta.json", meta)
    progress("write", 1, 1)
    if target.exists():
        # Killed between the two renames, a prepare leaves the previous corpus here: the next one restores it.
        old = target.parent / f"{TEMP_PREFIX}{name}{OLD_MARK}{os.getpid()}"
        target.rename(old)
        work.rename(target)
        shutil.rmtree(old)
    else:
        work.rename(target)


class _RemovedIfLeftEmpty:
    """On failure, removes `folder` if it did not exist before and is empty: a mistyped first prepare
    leaves no empty corpora folder behind (the lock, released first, takes its file with it)."""

    def __init__(self, folder: Path):
        self.folder, self.created = folder, not folder.exists()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, trace) -> None:
        if kind is not None and self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()


def _lock(root: Path, name: str) -> Lock:
    """Held while a prepare builds corpus `name`; the file is removed on release, so a prepare leaves nothing."""
    return Lock(
        root / f".lock-{name}",
        f"another `rnngen prepare` (process {{pid}}) is preparing corpus {name} "
        f"right now: wait for it to finish (or prepare under another {param('name')})",
        CorpusError,
    )


def _remove_stale_temporaries(root: Path) -> None:
    """Remove the temporary folders of prepares whose process is gone (killed by SIGKILL, a crash, a reboot),
    but not a corpus moved aside whose place is empty: the next prepare of its name restores it."""
    for folder in root.glob(f"{TEMP_PREFIX}*"):
        match = re.fullmatch(rf"{re.escape(TEMP_PREFIX)}.+-(\d+)", folder.name)
        if match and folder.is_dir() and not alive(int(match.group(1))):
            aside = _moved_aside(folder)
            if aside is None or (root / aside).exists():
                shutil.rmtree(folder, ignore_errors=True)


def _moved_aside(folder: Path) -> str | None:
    """The name of the whole corpus in `folder` when it is one that a `--force` prepare moved aside
    (`.tmp-NAME-old-PID`, its meta.json naming NAME), else None."""
    match = re.fullmatch(rf"{re.escape(TEMP_PREFIX)}(.+){OLD_MARK}\d+", folder.name)
    if match is None:
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return match.group(1) if isinstance(meta, dict) and meta.get("name") == match.group(1) else None


def _restore_moved_aside(root: Path, name: str) -> None:
    """Put back corpus `name` when a `--force` prepare was killed after moving it aside and before the new
    one took its place. The caller holds `name`'s lock: the prepare that moved it aside is gone."""
    target = root / name
    if target.exists():
        return
    for folder in root.glob(f"{TEMP_PREFIX}{name}{OLD_MARK}*"):
        if _moved_aside(folder) == name:
            folder.rename(target)
            return


def default_name(root: Path) -> str:
    """The name of this rnngen's embedded corpus under `root`, which a corpus to train on named `pydocs` means:
    `pydocs`, or `pydocs-r<RECIPE>` where another recipe made `root/pydocs`. That one is kept as it is, because
    the runs trained on it find it there (`reading.corpus_of`) to resume and to be evaluated."""
    from rnngen.data import pydocs  # here: its patterns are compiled on import, which most commands need not pay

    if outdated(Path(root) / sources.DEFAULT_DATASET):
        return f"{sources.DEFAULT_DATASET}-r{pydocs.RECIPE}"
    return sources.DEFAULT_DATASET


def folder_name(root: Path, name: str) -> str:
    """The folder under `root` of the corpus a run is to train on, named `name`: `pydocs` is this rnngen's embedded
    corpus (`default_name`), any other name is its own folder."""
    return default_name(root) if name == sources.DEFAULT_DATASET else name


def default_needed(root: Path) -> bool:
    """Whether this rnngen's embedded corpus under `root` (`default_name`) is missing."""
    return not (Path(root) / default_name(root)).exists()


def _default_notice(root: Path) -> str:
    """The line said before the embedded corpus is prepared under `root`."""
    name = default_name(root)
    line = f"preparing the embedded corpus {name} (once; it needs no network)"
    if name == sources.DEFAULT_DATASET:
        return line
    return f"{line}; {Path(root) / sources.DEFAULT_DATASET}, made by another rnngen's recipe, is kept for its runs"


def ensure_default(
    root: Path,
    progress: ProgressFn = lambda stage, done, total: None,
    notice: Callable[[str], None] = lambda line: None,
) -> Corpus | None:
    """Prepare this rnngen's embedded corpus under `root` when `default_needed` (it needs no network), saying so
    first through `notice`: the one rule by which `rnngen train` and `rnngen gradients` get it. The new corpus,
    else None."""
    if not default_needed(root):
        return None
    notice(_default_notice(root))
    return prepare(SourceSpec(), root=root, progress=progress)[0]


def outdated(path: Path) -> bool:
    """Whether `path` holds the embedded corpus made by another recipe than this rnngen's (never reused)."""
    from rnngen.data import pydocs  # here: its patterns are compiled on import, which most commands need not pay

    try:
        source = json.loads((Path(path) / "meta.json").read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(source, dict)
        and source.get("dataset") == sources.DEFAULT_DATASET
        and source.get("recipe") != pydocs.RECIPE
    )
