"""The training loop: carried-state windows, AdamW, clipping, warmup + cosine, evaluation, checkpoints.

Progress is reported through a callback (`on_event(kind, info)`), which the CLI renders; this
module prints nothing. Everything `--resume` needs is in `last.safetensors`: with a fixed seed on
the CPU, a run stopped and resumed computes the same losses as one that never stopped.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from rnngen import device as devices
from rnngen.atomic import write_atomic
from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.corpus import Corpus
from rnngen.data.streams import TokenStream
from rnngen.errors import TrainingDiverged
from rnngen.models import build
from rnngen.models.state import (
    detach_state,
    map_state,
    slice_rows,
    state_rows,
    state_to,
)
from rnngen.training import checkpoint, distributed
from rnngen.training.checkpoint import Checkpoint
from rnngen.training.distributed import World
from rnngen.training.evaluate import evaluate
from rnngen.training.optim import adamw
from rnngen.training.runs import BEST, LAST, RunFolder
from rnngen.training.schedule import lr_at, progress_of
from rnngen.training.signals import Interrupted, StopFlag

EventFn = Callable[[str, dict[str, Any]], None]


def _rng_state(dev: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], dev: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def corpus_identity(corpus: Corpus) -> dict[str, Any]:
    """What a checkpoint records of its corpus: enough to find it again and to check the tokenizer."""
    return {"name": corpus.name, "path": str(corpus.path), "tokenizer": corpus.meta["tokenizer"],
            "train_tokens": corpus.meta["splits"]["train"]["tokens"],
            "train_documents": corpus.meta["splits"]["train"]["documents"],
            "train_characters": corpus.meta["splits"]["train"]["characters"],
            "val_tokens": corpus.meta["splits"]["val"]["tokens"],
            "val_characters": corpus.meta["splits"]["val"]["characters"]}


class Trainer:
    """Trains one model on one corpus into one run folder."""

    def __init__(self, corpus: Corpus, model_cfg: ModelConfig, train_cfg: TrainConfig, run: RunFolder,
                 resume_from: Checkpoint | None = None, on_event: EventFn | None = None, stop: StopFlag | None = None,
                 world: World = World()):
        self.corpus, self.model_cfg, self.cfg, self.run, self.world = corpus, model_cfg, train_cfg, run, world
        self.on_event = on_event or (lambda kind, info: None)
        self.stop = stop or StopFlag()
        self.device = devices.pick(train_cfg.device)
        if self.device.type == "cuda" and world.size > 1:
            self.device = torch.device("cuda", world.local_rank)
        torch.manual_seed(train_cfg.seed)
        self.model = build(model_cfg).to(self.device)
        if world.size > 1:
            torch.manual_seed(train_cfg.seed + world.rank)  # each rank its own dropout masks
        self.forward = torch.compile(self.model) if train_cfg.compile else self.model
        if world.size > 1:
            # DDP starts every rank from rank 0's weights and averages gradients during backward.
            self.forward = DistributedDataParallel(self.forward, device_ids=[world.local_rank]
                                                   if self.device.type == "cuda" else None)
        self.optimizer = adamw(self.model, train_cfg, self.device)
        # Rank r reads its own rows of the global batch: the ranks see disjoint streams of the corpus.
        self.stream = TokenStream(corpus.tokens("train"), train_cfg.batch_size, train_cfg.seq_len,
                                  first_row=world.rank * train_cfg.batch_size,
                                  total_rows=world.size * train_cfg.batch_size)
        self.val_tokens = corpus.tokens("val")
        self.step, self.seconds, self.best, self.saved_step = 0, 0.0, math.inf, 0
        self.state = None
        if resume_from is not None:
            self._restore(resume_from)
        elif world.main:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(self._checkpoint(None).header())
            write_atomic(run.tokenizer_path, (corpus.path / "tokenizer.model").read_bytes())

    def _restore(self, ckpt: Checkpoint) -> None:
        checkpoint.load_weights(self.model, ckpt, self.run.file(LAST))
        trainer = ckpt.resume_state or {}
        self.optimizer.load_state_dict(trainer["optimizer"])
        _set_rng_state(trainer["rng"], self.device)
        self.step = self.saved_step = ckpt.step
        self.seconds = float(trainer["seconds"])
        self.best = float(trainer["best"])
        self.state = self._my_rows(state_to(trainer.get("hidden"), self.device))
        if self.world.main:
            self.run.truncate_metrics(self.step)

    def _my_rows(self, state: Any) -> Any:
        """This rank's rows of a saved hidden state; none when the run resumes with another global batch."""
        rows = self.cfg.batch_size
        if state is None or state_rows(state) != rows * self.world.size:
            return None
        return slice_rows(state, self.world.rank * rows, (self.world.rank + 1) * rows)

    def _checkpoint(self, trainer: dict[str, Any] | None) -> Checkpoint:
        return Checkpoint(model=self.model_cfg, training=self.cfg, corpus=corpus_identity(self.corpus),
                          weights=checkpoint.model_weights(self.model), resume_state=trainer, step=self.step,
                          best_val_loss=None if math.isinf(self.best) else self.best)

    def save(self, best: bool = False) -> None:
        """Write `last` (with all resume state) and, when asked, `best` (weights only).

        Every rank calls this (the carried states of all rows are gathered); rank 0 writes.
        """
        hidden = self.state
        if self.world.size > 1:
            hidden = map_state(hidden, distributed.gather_rows)
        if self.world.main:
            if best:
                checkpoint.save(self.run.file(BEST), self._checkpoint(None))
            trainer = {"optimizer": self.optimizer.state_dict(), "rng": _rng_state(self.device),
                       "seconds": self.seconds, "best": self.best, "hidden": hidden}
            checkpoint.save(self.run.file(LAST), self._checkpoint(trainer))
            self.on_event("checkpoint", {"step": self.step, "best": best, "path": str(self.run.path)})
        self.saved_step = self.step

    def _budget_spent(self) -> bool:
        return progress_of(self.step, self.seconds, self.cfg) >= 1.0

    def _evaluate(self) -> dict[str, Any]:
        # Rank 0 evaluates while the others wait: the split is small next to training.
        result: dict[str, Any] = {}
        if self.world.main:
            result = evaluate(self.model, self.val_tokens, self.corpus.characters("val"), self.cfg.batch_size,
                              self.cfg.seq_len, self.cfg.eval_tokens, self.device)
            result = {"event": "eval", "step": self.step, **result}
            self.run.append_metrics(result)
            self.on_event("eval", result)
        improved = distributed.broadcast(bool(result) and result["val_loss"] < self.best)
        if improved:
            self.best = distributed.broadcast(result.get("val_loss"))
        self.save(best=improved)
        return result

    def _log(self, pending: list[tuple[torch.Tensor, torch.Tensor]], tokens_per_s: float, lr: float) -> None:
        # The only host-device synchronisation of the loop: once per log interval.
        values = distributed.mean(torch.stack([torch.stack([loss.float(), norm.float()]) for loss, norm in pending]))
        values = values.cpu()
        bad = (~torch.isfinite(values)).any(1).nonzero()
        if len(bad):
            step = self.step - len(pending) + int(bad[0]) + 1
            raise TrainingDiverged(
                f"the loss or the gradients became non-finite at step {step}: kept the last good checkpoint "
                f"{self.run.file(LAST)} (step {self.saved_step}); "
                f"start again with a lower --lr (now {self.cfg.lr:g}) or --clip (now {self.cfg.clip:g})")
        losses, norms = values[:, 0], values[:, 1]
        row = {"event": "train", "step": self.step, "loss": losses.mean().item(), "lr": lr,
               "grad_norm": norms.mean().item(),
               "clipped": (norms > self.cfg.clip).float().mean().item() if self.cfg.clip > 0 else 0.0,
               "tokens_per_s": tokens_per_s, "seconds": round(self.seconds, 3),
               "epoch": round(self.stream.epoch(self.step), 4)}
        if self.world.main:
            self.run.append_metrics(row)
        self.on_event("train", {**row, "progress": progress_of(self.step, self.seconds, self.cfg)})

    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent (or a signal arrives); returns a summary."""
        cfg, model, world = self.cfg, self.model, self.world
        tokens_per_step = cfg.batch_size * cfg.seq_len * world.size
        self.on_event("start", {"run": str(self.run.path), "device": str(self.device), "step": self.step,
                                "parameters": sum(p.numel() for p in model.parameters()), "processes": world.size,
                                "rows": cfg.batch_size * world.size,
                                "train_tokens": len(self.stream.tokens), "tokens_per_step": tokens_per_step})
        model.train()
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        clip = cfg.clip if cfg.clip > 0 else math.inf
        pin = self.device.type == "cuda"
        last_eval: dict[str, Any] | None = None
        interval_start, interval_steps = time.perf_counter(), 0
        lr = cfg.lr
        done = self._budget_spent()
        next_eval = (self.step // cfg.eval_every + 1) * cfg.eval_every
        while not done:
            started = time.perf_counter()
            if self.stream.starts_epoch(self.step):
                self.state = None
            batch = torch.from_numpy(self.stream.window(self.step))
            if pin:
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            lr = lr_at(self.step, progress_of(self.step, self.seconds, cfg), cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with devices.autocast(self.device):
                logits, state = self.forward(batch[:, :-1], self.state)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state = detach_state(state)
            pending.append((loss.detach(), norm.detach()))
            self.step += 1
            interval_steps += 1
            self.seconds += time.perf_counter() - started
            # Decisions that all ranks must share (log, stop, end) are taken together at log steps;
            # a single process takes them at every step.
            boundary = self.step % cfg.log_every == 0 or (cfg.steps is not None and self.step >= cfg.steps)
            if world.size == 1:
                boundary = boundary or self._budget_spent() or self.stop.signal is not None
            if not boundary:
                continue
            elapsed = time.perf_counter() - interval_start
            self._log(pending, interval_steps * tokens_per_step / max(elapsed, 1e-9), lr)
            pending.clear()
            interval_start, interval_steps = time.perf_counter(), 0
            done = distributed.any_rank(self._budget_spent(), self.device)
            if distributed.any_rank(self.stop.signal is not None, self.device):
                self.save()
                name = signal.Signals(self.stop.signal or signal.SIGTERM).name
                raise Interrupted(f"stopped by {name} at step {self.step}; saved {self.run.file(LAST)}; continue with "
                                  f"`rnngen train --resume {self.run.path}`", 128 + (self.stop.signal or signal.SIGTERM))
            if self.step >= next_eval or done:
                next_eval = (self.step // cfg.eval_every + 1) * cfg.eval_every
                last_eval = self._evaluate()
                interval_start = time.perf_counter()
        if last_eval is None:  # the budget was already spent when the run resumed
            last_eval = self._evaluate()
        summary = {"run": str(self.run.path), "steps": self.step, "seconds": self.seconds, "processes": world.size,
                   "tokens": self.step * tokens_per_step,
                   "tokens_per_s": self.step * tokens_per_step / max(self.seconds, 1e-9),
                   "best_val_loss": self.best, "best_val_bpc": self._best_bpc(), **last_eval}
        self.on_event("done", summary)
        return summary

    def _best_bpc(self) -> float | None:
        if not self.world.main:
            return None
        evals = [row for row in self.run.metrics() if row.get("event") == "eval"]
        return min((row["val_bpc"] for row in evals), default=None)


def new_run_name(corpus: str, kind: str) -> str:
    """A run name that sorts by time: `<corpus>-<model>-<YYYYmmdd-HHMMSS>`."""
    return f"{corpus}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"

