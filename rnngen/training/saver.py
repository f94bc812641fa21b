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
    ):
        self.run, self.model, self.model_cfg, self.cfg, self.corpus = run, model, model_cfg, cfg, corpus
        self.sizing = sizing

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

    def restore_config(self) -> None:
        """A resumed run whose config.json cannot be read gets it back from its checkpoint's own configuration, so
        that every command reads the run again."""
        try:
            self.run.config()
        except DamagedRun:
            self.run.write_config(self.checkpoint(0, math.inf, None).header())

    def save(self, step: int, best_val_loss: float, resume_state: dict[str, Any], best: bool) -> Saved:
        """Write `best` when asked, then `last`."""
        if best:
            checkpoint.save(self.run.file(BEST), self.checkpoint(step, best_val_loss, None))
        checkpoint.save(self.run.file(LAST), self.checkpoint(step, best_val_loss, resume_state))
        return Saved(step=step, best=best, path=str(self.run.path))
