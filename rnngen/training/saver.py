"""Checkpoint assembly: the run's configuration, corpus identity and weights, written into the run folder."""

from __future__ import annotations

import math
from typing import Any

from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.reading import Corpus
from rnngen.models import RecurrentLM, checkpoint
from rnngen.models.checkpoint import Checkpoint
from rnngen.store.atomic import write_atomic
from rnngen.store.runs import BEST, LAST, DamagedRun, RunFolder, write_failed
from rnngen.training.events import Saved


class Saver:
    """Writes one run's checkpoints: `last` (with the resume state) and `best` (weights only)."""

    def __init__(
        self,
        run: RunFolder,
        model: RecurrentLM,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        corpus: Corpus,
        sizing: dict[str, Any] | None = None,
        arithmetic: dict[str, str] | None = None,
    ):
        self.run, self.model, self.model_cfg, self.cfg, self.corpus = run, model, model_cfg, cfg, corpus
        self.sizing, self.arithmetic = sizing, arithmetic

    def checkpoint(self, step: int, best_val_loss: float, resume_state: dict[str, Any] | None) -> Checkpoint:
        return Checkpoint(
            model=self.model_cfg,
            training=self.cfg,
            corpus=self.corpus.identity(),
            weights=checkpoint.model_weights(self.model),
            resume_state=resume_state,
            step=step,
            best_val_loss=None if math.isinf(best_val_loss) else best_val_loss,
            sizing=self.sizing,
            arithmetic=self.arithmetic,
        )

    def start_run(self) -> None:
        """A new run folder with its config.json and a copy of the corpus tokenizer; the metrics of an
        attempt that stopped before its first checkpoint are dropped."""
        self.run.path.mkdir(parents=True, exist_ok=True)
        self.run.metrics_path.unlink(missing_ok=True)
        self.run.write_config(self.checkpoint(0, math.inf, None).header())
        try:
            write_atomic(self.run.tokenizer_path, (self.corpus.path / "tokenizer.model").read_bytes())
        except OSError as exc:
            raise write_failed(self.run.tokenizer_path, exc) from exc

    def resume_config(self, step: int, best_val_loss: float) -> list[str]:
        """A resumed run's config.json rewritten to what now runs (a damaged one written again from the checkpoint);
        returns what changed, "precision bf16 -> fp32" and the like, for the line that says so."""
        header = self.checkpoint(step, best_val_loss, None).header()
        try:
            before = self.run.config()
        except DamagedRun:
            before = None
        if before != header:
            self.run.write_config(header)
        if before is None:
            return []
        changed = [
            f"{name} {_shown(before['train'].get(name))} -> {_shown(value)}"
            for name, value in header["train"].items()
            if before["train"].get(name) != value
        ]
        then, now = (before.get("arithmetic") or {}).get("precision"), self.arithmetic and self.arithmetic["precision"]
        if then != now and before["train"].get("precision") == header["train"]["precision"]:  # "auto" on another CPU
            changed.append(f"arithmetic {_shown(then)} -> {_shown(now)}")
        return changed

    def save(self, step: int, best_val_loss: float, resume_state: dict[str, Any], best: bool) -> Saved:
        """Write `best` when asked, then `last`."""
        if best:
            checkpoint.save(self.run.file(BEST), self.checkpoint(step, best_val_loss, None))
        checkpoint.save(self.run.file(LAST), self.checkpoint(step, best_val_loss, resume_state))
        # config.json is `last`'s header: what `rnngen runs`, `rnngen push` and the hub's model card read.
        self.run.write_config(self.checkpoint(step, best_val_loss, None).header())
        return Saved(step=step, best=best, path=str(self.run.path))


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)
