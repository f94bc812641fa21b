"""Run folders: where a training run keeps its files. Reading them needs no torch (`rnngen runs` is instant).

A run folder `checkpoints/<run>/` holds:
  config.json        model, training and corpus identity (also inside every checkpoint file)
  tokenizer.model    a copy of the corpus tokenizer
  best.safetensors   weights with the lowest validation loss
  last.safetensors   weights plus everything `--resume` needs (optimizer, RNG, carried state)
  metrics.jsonl      one JSON object per log line and per evaluation
  .lock              while one process trains the run (`RunFolder.claim`)
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from rnngen.errors import CheckpointError, RnngenError, param
from rnngen.store.atomic import remove_stale_temps, strict_json, write_atomic, write_json_atomic
from rnngen.store.checkpoint_format import check_format
from rnngen.store.lock import Lock

BEST, LAST = "best.safetensors", "last.safetensors"
LOCK = ".lock"
# What a run writes: a folder holding anything else is not a run, and a new run does not write into it.
RUN_FILES = {"config.json", "tokenizer.model", "metrics.jsonl", BEST, LAST, LOCK}


# A split's figures (rnngen.training.evaluate.score) are stored and printed under the split's name (`figure_key`).
FIGURES = ("loss", "ppl", "bpc", "tokens")


def figure_key(split: str, figure: str) -> str:
    """The name of a split's figure wherever one is stored or printed: `val_bpc` in metrics.jsonl and
    `rnngen evaluate --json`, `train_loss` for the training split."""
    return f"{split}_{figure}"


def named(split: str, figures: dict[str, Any]) -> dict[str, Any]:
    """`figures` with each of FIGURES named for `split` (`figure_key`); the others keep their names."""
    return {figure_key(split, key) if key in FIGURES else key: value for key, value in figures.items()}


class RunFolder:
    """A training run's folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.model"

    def config(self) -> dict[str, Any]:
        """config.json: the header of the run's checkpoints; refused when it is damaged (`DamagedRun`) or of
        another checkpoint format."""
        path = self.config_path
        fix = (
            f"resume the run ({param('resume')} writes it again from the checkpoint), restore it from a copy, or "
            "train the run again"
        )
        data = _read(path, fix)
        if not data.strip():
            raise DamagedRun(f"{path} is empty: {fix}")
        try:
            config = json.loads(data)
        except ValueError:
            raise DamagedRun(f"{path} is truncated or not JSON: {fix}") from None
        if not isinstance(config, dict):
            raise DamagedRun(f"{path} is not a JSON object: {fix}")
        check_format(path, config)
        if not all(isinstance(config.get(key), dict) for key in ("model", "train", "corpus")):
            raise DamagedRun(f"{path} lacks the model, training or corpus configuration: {fix}")
        return config

    def write_config(self, header: dict[str, Any]) -> None:
        try:
            write_json_atomic(self.config_path, header)
        except OSError as exc:
            raise write_failed(self.config_path, exc) from exc

    def has_checkpoint(self) -> bool:
        return self.file(LAST).exists() or self.file(BEST).exists()

    def claim(self, resuming: bool) -> Lock:
        """Lock the run for this process until it exits (or `release()`), or raise a one-line error.

        A new run takes a folder that does not exist yet, or one left by a run that stopped before its
        first checkpoint (its files are replaced); a resumed run needs its folder. Temporary files of
        writers killed mid-write are removed.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = Lock(
                self.path / LOCK,
                f"{self.path} is in use by another rnngen train (pid {{pid}}): wait for "
                f"it to finish, or pick another {param('name')}",
            )
        except OSError as exc:
            raise RnngenError(
                f"cannot create the run folder {self.path}: {exc.strerror}; pass a writable "
                f"{param('checkpoints')} (or set RNNGEN_CHECKPOINTS)"
            ) from exc
        try:
            if not resuming:
                self._require_fresh()
            remove_stale_temps(self.path)
            # safetensors' own temporary files (`.tmpXXXX`, no pid): only the holder of the lock writes here.
            for stale in self.path.glob(".tmp*"):
                stale.unlink(missing_ok=True)
        except BaseException:
            lock.release()
            raise
        return lock

    def _require_fresh(self) -> None:
        if self.has_checkpoint():
            raise RnngenError(
                f"{self.path} already exists: continue it with {param('resume')} {self.name}, "
                f"or pick another {param('name')}"
            )
        # A run writes config.json first: files without it, or files a run never writes, are someone else's.
        found = sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))
        if found and ("config.json" not in found or set(found) - RUN_FILES):
            raise RnngenError(
                f"{self.path} holds files that are not a run's ({', '.join(found[:3])}): pick another {param('name')}"
            )

    def documents(self) -> str:
        """How the run's corpus was cut into documents (`prepare --documents`): rows, lines, paragraphs or
        articles."""
        return self.config()["corpus"]["documents"]

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl; lines that are not JSON objects (cut short by a crash, edited) are skipped.
        A metrics.jsonl that cannot be read at all (a directory, unreadable) is a `DamagedRun`."""
        if not self.metrics_path.exists():
            return []
        data = _read(self.metrics_path, "move it out of the run folder (the run lists, plots and resumes without it)")
        rows = []
        for line in data.decode(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def seconds_at(self, step: int) -> float:
        """The training seconds logged at or before `step` (0.0 when none is)."""
        rows = logged(self.metrics(), "train", ("step", "seconds"))
        return max((row["seconds"] for row in rows if row["step"] <= step), default=0.0)

    def best_val_bpc(self) -> float | None:
        """The validation bits per character of the evaluation with the lowest loss (the first of equals: the one
        `best` holds), not the lowest of another evaluation; None before the first evaluation."""
        loss, bpc = figure_key("val", "loss"), figure_key("val", "bpc")
        evals = logged(self.metrics(), "eval", (loss, bpc))
        return min(evals, key=lambda row: row[loss])[bpc] if evals else None

    def append_metrics(self, row: dict[str, Any]) -> None:
        try:
            with open(self.metrics_path, "a") as file:
                file.write(strict_json(row) + "\n")
        except OSError as exc:
            raise write_failed(self.metrics_path, exc) from exc

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics logged after `step`: on resume they are logged again."""
        rows = [row for row in self.metrics() if _number(row.get("step", 0)) <= step]
        try:
            write_atomic(self.metrics_path, "".join(strict_json(row) + "\n" for row in rows).encode())
        except OSError as exc:
            raise write_failed(self.metrics_path, exc) from exc


class DamagedRun(CheckpointError):
    """A run's config.json or metrics.jsonl that cannot be read (`rnngen runs` lists such a run on a row of its own,
    where a run of another checkpoint format is left out)."""


def _read(path: Path, fix: str) -> bytes:
    """The bytes of a run's file, or a `DamagedRun` saying why they cannot be read and `fix`."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise DamagedRun(f"{path} is a directory, not a file: {fix}") from None
    except FileNotFoundError:
        raise DamagedRun(f"{path} is missing: {fix}") from None
    except OSError as exc:
        raise DamagedRun(f"{path} is unreadable ({exc.strerror or exc}): {fix}") from None


def write_failed(path: Path, exc: OSError) -> CheckpointError:
    """The error for a failed write of `path` in a run folder: why, what the run still has, what to do."""
    fix = "free some disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
    return CheckpointError(f"cannot write {path}: {exc.strerror}; {what_is_kept(Path(path).parent, fix)}")


def what_is_kept(folder: Path, fix: str) -> str:
    """What a run folder holds after a failed write, and how to go on from there."""
    last = Path(folder) / LAST
    if last.exists():
        return f"the previous checkpoint is intact ({last}): {fix}, then resume with {param('resume')} {folder}"
    return f"the run has no checkpoint yet: {fix}, then start it again with the same command"


def logged(rows: list[dict[str, Any]], event: str | None, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The metrics `rows` of `event` (of any event for None) whose `keys` all hold numbers, in order: metrics.jsonl
    may have been edited or cut short, and a row that is not whole is skipped."""
    return [
        row
        for row in rows
        if (event is None or row.get("event") == event) and all(isinstance(row.get(key), (int, float)) for key in keys)
    ]


def figures(rows: list[dict[str, Any]], event: str | None, key: str) -> list[float]:
    """The numbers logged as `key` in the metrics `rows` of `event` (of any event for None), in order (`logged`)."""
    return [row[key] for row in logged(rows, event, (key,))]


def _number(value: Any) -> float:
    return value if isinstance(value, (int, float)) else 0.0


def require_same_tokenizer(what: str, found: dict[str, Any], expected: dict[str, Any], fix: str) -> None:
    """Raise unless `what`'s tokenizer (sha256, vocabulary size) is the one expected."""
    if any(found[key] != expected[key] for key in ("sha256", "vocab_size")):
        sizes = (found["vocab_size"], expected["vocab_size"])
        how = (
            f"vocabulary {sizes[0]} vs {sizes[1]}"
            if sizes[0] != sizes[1]
            else f"another tokenizer of the same size, {sizes[0]} pieces"
        )
        raise CheckpointError(f"{what} does not match the checkpoint's tokenizer ({how}): {fix}")


def list_runs(root: Path) -> list[RunFolder]:
    """Run folders under `root`, the most recently written last: the folders holding a file only a run writes, so
    that a run whose config.json is gone is listed (and refused as a `DamagedRun` when it is read)."""
    kept = RUN_FILES - {LOCK}  # a lock alone is left by a run killed before it wrote anything
    runs = [RunFolder(p) for p in Path(root).glob("*") if p.is_dir() and any((p / f).exists() for f in kept)]
    return sorted(runs, key=lambda run: max((p.stat().st_mtime for p in run.path.iterdir()), default=0))
