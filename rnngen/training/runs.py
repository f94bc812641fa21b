"""Run folders: where a training run keeps its files. Reading them needs no torch (`rnngen runs` is instant).

A run folder `checkpoints/<run>/` holds:
  config.json        model, training and corpus identity (also inside every checkpoint file)
  tokenizer.model    a copy of the corpus tokenizer
  best.safetensors   weights with the lowest validation loss
  last.safetensors   weights plus everything `--resume` needs (optimizer, RNG, carried state)
  metrics.jsonl      one JSON object per log line and per evaluation
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnngen.atomic import write_atomic, write_json_atomic
from rnngen.data.corpus import Corpus
from rnngen.data.tokenizer import Tokenizer
from rnngen.errors import CheckpointError

BEST, LAST = "best.safetensors", "last.safetensors"


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
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.config_path} is missing or unreadable: {exc}") from exc

    def write_config(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.config_path, header)

    def tokenizer(self, expected_sha256: str | None, vocab_size: int) -> Tokenizer:
        """The run's tokenizer, checked against the checkpoint that will use it."""
        tok = Tokenizer.load(self.tokenizer_path)
        require_same_tokenizer(str(self.tokenizer_path), {"sha256": tok.sha256, "vocab_size": tok.vocab_size},
                               {"sha256": expected_sha256, "vocab_size": vocab_size},
                               "copy the tokenizer.model of the corpus the run was trained on")
        return tok

    def documents(self) -> str | None:
        """How the run's corpus was cut into documents (`prepare --documents`): rows, lines, paragraphs or
        articles; None for a run trained before rnngen recorded it."""
        return self.config().get("corpus", {}).get("documents")

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return rows

    def best_val_bpc(self) -> float | None:
        """The lowest validation bits per character in the metrics; None before the first evaluation."""
        return min((row["val_bpc"] for row in self.metrics() if row.get("event") == "eval"), default=None)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as file:
            file.write(json.dumps(row) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics logged after `step`: on resume they are logged again."""
        rows = [row for row in self.metrics() if row.get("step", 0) <= step]
        write_atomic(self.metrics_path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def require_same_tokenizer(what: str, found: dict[str, Any], expected: dict[str, Any], fix: str) -> None:
    """Raise unless `what`'s tokenizer (sha256, vocabulary size) is the one expected; a figure expected as None is not compared."""
    if any(expected.get(key) is not None and found.get(key) != expected[key] for key in ("sha256", "vocab_size")):
        raise CheckpointError(f"{what} does not match the checkpoint's tokenizer (vocabulary {found.get('vocab_size')} "
                              f"vs {expected.get('vocab_size')}): {fix}")


def corpus_identity(corpus: Corpus) -> dict[str, Any]:
    """What a checkpoint records of its corpus: enough to find it again and to check the tokenizer."""
    splits = corpus.meta["splits"]
    source = corpus.meta.get("source", {})
    return {"name": corpus.name, "path": str(corpus.path), "dataset": source.get("dataset"),
            "documents": source.get("documents"), "tokenizer": corpus.meta["tokenizer"],
            "train_tokens": splits["train"]["tokens"], "train_documents": splits["train"]["documents"],
            "train_characters": splits["train"]["characters"], "val_tokens": splits["val"]["tokens"],
            "val_characters": splits["val"]["characters"]}


def corpus_of(identity: dict[str, Any], root: Path) -> Corpus:
    """The corpus a checkpoint was trained on (`Checkpoint.corpus`): at its recorded path, else by name under `root`."""
    path = Path(identity["path"])
    corpus = Corpus.open(path) if (path / "meta.json").exists() else Corpus.find(root, identity["name"])
    require_same_tokenizer(f"corpus {corpus.path}", corpus.meta["tokenizer"], identity["tokenizer"],
                           "use the corpus the run was trained on")
    return corpus


def list_runs(root: Path) -> list[RunFolder]:
    """Run folders under `root`, the most recently written last."""
    runs = [RunFolder(p.parent) for p in Path(root).glob("*/config.json")]
    return sorted(runs, key=lambda run: max((p.stat().st_mtime for p in run.path.iterdir()), default=0))


def resolve(checkpoint: str | None, root: Path) -> tuple[RunFolder, Path]:
    """The run folder and checkpoint file a `--checkpoint` argument names.

    None: the most recent run under `root`. A run folder (or a run name under `root`): its best
    checkpoint, else its last. A file: that file, in its run folder. `hf:USER/NAME[@REVISION]`: the
    model's folder in the hub cache, downloaded once.
    """
    if checkpoint is not None and checkpoint.startswith("hf:"):
        from rnngen import hub  # the hub client loads only for hub models

        run = RunFolder(hub.download(checkpoint))
    elif checkpoint is None:
        runs = [run for run in list_runs(root) if run.file(BEST).exists() or run.file(LAST).exists()]
        if not runs:
            raise CheckpointError(f"no trained run in {root}: train one with `rnngen train`, or pass --checkpoint PATH")
        run = runs[-1]
    else:
        path = Path(checkpoint).expanduser()
        if not path.exists() and (Path(root) / checkpoint).exists():
            path = Path(root) / checkpoint
        if path.is_file():
            return RunFolder(path.parent), path
        if not path.is_dir():
            raise CheckpointError(f"no checkpoint or run folder at {checkpoint}: see `rnngen runs` for the runs in {root}")
        run = RunFolder(path)
    for name in (BEST, LAST):
        if run.file(name).exists():
            return run, run.file(name)
    raise CheckpointError(f"{run.path} holds no checkpoint yet ({BEST} or {LAST})")
