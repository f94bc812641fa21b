"""The training loop: carried-state windows, AdamW, clipping, warmup + cosine, evaluation, checkpoints.

`fit()` is the loop; its parts live in their own modules: building the model and optimizer
(`build`), the budget and schedule (`schedule`), the resume state (`resume`), metrics and events
(`metrics`, `events`), the weights' moving average (`averaging`), checkpoint assembly (`saver`) and
the sample drawn at each evaluation (a `SamplerFactory` handed in). Progress is reported as typed events
(`on_event(event)`), which the CLI renders; this module prints nothing.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rnngen.config import ModelConfig, TrainConfig
from rnngen.data.reading import Corpus
from rnngen.data.streams import TokenStream
from rnngen.errors import TrainingDiverged, param
from rnngen.models import RecurrentLM
from rnngen.models.checkpoint import Checkpoint, load_weights, model_weights
from rnngen.models.precision import Arithmetic, autocast, resolve
from rnngen.models.state import detach_state, map_state
from rnngen.store.runs import BEST, LAST, RunFolder, named
from rnngen.training import distributed, resume
from rnngen.training.averaging import WeightAverage
from rnngen.training.build import build_for_training
from rnngen.training.distributed import World
from rnngen.training.evaluate import next_token_loss, score
from rnngen.training.events import Evaluated, EventFn, Finished, Logged, Notice, Sampled, Started
from rnngen.training.metrics import Interval, Reporter
from rnngen.training.saver import Saver
from rnngen.training.schedule import Budget
from rnngen.training.signals import Interrupted, StopFlag

# Makes the sample drawn at each evaluation from (the evaluated model, the corpus, the prompt or None for
# the corpus's own, the device): `rnngen.generation.samples.Sampler`, handed in from above.
SamplerFactory = Callable[[RecurrentLM, Corpus, "str | None", torch.device], Callable[[int], Sampled]]


def window_on(stream: TokenStream, index: int, device: torch.device) -> torch.Tensor:
    """Window `index` of `stream`, tokens [rows, seq_len + 1], on `device`."""
    batch = torch.from_numpy(stream.window(index))
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


def train_step(
    train_model: torch.nn.Module,
    model: RecurrentLM,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    hidden: Any,
    clip: float,
    device: torch.device,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """One window of truncated backpropagation through time: forward from the carried state `hidden`, cross-entropy
    against the next tokens, backward through this window only, clip at `clip`, step; the forward pass in the
    resolved `precision`, fp32 or bf16 (rnngen.models.precision). Returns the loss and the gradient norm (on the
    device, not waited for) and the state to carry into the next window."""
    with autocast(device, precision):
        logits, hidden = train_model(batch[:, :-1], hidden)
        loss = next_token_loss(logits, batch[:, 1:])
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm, detach_state(hidden)


class Trainer:
    """Trains one model on one corpus into one run folder."""

    def __init__(
        self,
        corpus: Corpus,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        run: RunFolder,
        resume_from: Checkpoint | None = None,
        on_event: EventFn | None = None,
        stop: StopFlag | None = None,
        world: World = World(),
        init_from: Path | None = None,
        sampler: SamplerFactory | None = None,
        sizing: dict[str, Any] | None = None,
        arithmetic: Arithmetic | None = None,
    ):
        self.corpus, self.model_cfg, self.cfg, self.run, self.world = corpus, model_cfg, train_cfg, run, world
        self.stop = stop or StopFlag()
        setup = build_for_training(model_cfg, train_cfg, world, init_from)
        # Two modules over one set of weights: `model` holds the weights the optimizer steps; `train_model` runs
        # the training forward pass through them (the same object, unless --compile compiles it or DDP wraps it
        # to average gradients across processes). A third set, the average's (--ema), is what is published.
        self.device, self.model, self.train_model, self.optimizer = (
            setup.device,
            setup.model,
            setup.train_model,
            setup.optimizer,
        )
        # What `precision` computes in here: resolved once, before a folder is made, by whoever planned the run.
        self.arithmetic = arithmetic or resolve(train_cfg.precision, self.device, model_cfg)
        # Rank r reads its own rows of the global batch: the ranks see disjoint streams of the corpus.
        self.stream = TokenStream(
            corpus.tokens("train"),
            train_cfg.batch_size,
            train_cfg.seq_len,
            first_row=world.rank * train_cfg.batch_size,
            total_rows=world.size * train_cfg.batch_size,
        )
        if resume_from is None and init_from is None:
            self.model.start_from_counts(corpus.token_counts("train"))
        # With --ema, an average of the weights is what is evaluated, sampled and saved as the model;
        # the training weights travel in `last`'s resume state.
        self.average = WeightAverage(self.model, train_cfg.ema) if train_cfg.ema > 0 else None
        self.saver = Saver(run, self.saved_model, model_cfg, train_cfg, corpus, sizing, self.arithmetic.to_dict())
        self.report = Reporter(run, world, on_event)
        self.budget = Budget(train_cfg)
        self.best = math.inf  # the lowest validation loss so far
        self.evals_without_improvement = 0  # evaluations in a row without a lower validation loss, for --patience
        self.sampler = (
            sampler(self.saved_model, corpus, train_cfg.sample_prompt, self.device)
            if sampler is not None and train_cfg.samples and world.is_main
            else None
        )
        self.last_sample: Sampled | None = None
        self.resume_notice: str | None = None  # what a resume changed in config.json, said when it starts
        self.lr = train_cfg.lr  # the rate of the last step, for the log line
        self.hidden = None  # the state carried into the next window: this rank's rows
        if resume_from is not None:
            self._load_weights(resume_from, run.file(LAST))
            restored = resume.restore_from(resume_from, run, self.optimizer, self.device, train_cfg.batch_size, world)
            self.budget = Budget(train_cfg, resume_from.step, restored.seconds)
            self.best, self.hidden = restored.best, restored.hidden
            self.evals_without_improvement = restored.evals_without_improvement
            if world.is_main:
                changed = self.saver.resume_config(resume_from.step, self.best)
                if changed:
                    self.resume_notice = f"{run.config_path} now says what this resume runs: {', '.join(changed)}"
                run.truncate_metrics(resume_from.step)
        elif world.is_main:
            self.saver.start_run()
        self.saved_step = self.budget.step if resume_from is not None else None  # the step `last` holds
        self.finished: Finished | None = None  # the summary, once `fit` has ended

    @property
    def saved_model(self) -> RecurrentLM:
        """The weights evaluated, sampled and saved as the model: their moving average with --ema, else the
        training weights themselves."""
        return self.average.model if self.average is not None else self.model

    @property
    def on_event(self) -> EventFn:
        return self.report.on_event

    @on_event.setter
    def on_event(self, fn: EventFn) -> None:
        self.report.on_event = fn

    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent, patience runs out or a signal arrives; returns the summary as one
        flat dict (`Finished.to_dict()`), and keeps it as `finished`."""
        if self.resume_notice:
            self.report(Notice(self.resume_notice))
        self.report(self._started())
        self.model.train()
        clip = self.cfg.clip if self.cfg.clip > 0 else math.inf
        interval, last_eval, evaluated = Interval(), None, False
        next_eval = self.budget.next_eval()
        done = self.budget.spent()
        # The budget's clock moves at log steps, after the wait for the device (see `Budget`).
        while not done:
            if self.stream.starts_epoch(self.budget.step):
                self.hidden = None  # the streams start again from the beginning of the text
            batch = window_on(self.stream, self.budget.step, self.device)
            self._set_lr(self.budget.lr())
            loss, grad_norm, self.hidden = train_step(
                self.train_model,
                self.model,
                self.optimizer,
                batch,
                self.hidden,
                clip,
                self.device,
                self.arithmetic.precision,
            )
            interval.add(loss, grad_norm)
            self.budget.tick()
            if self.average is not None:
                self.average.update(self.model, self.budget.expected_steps())
            if not self._ranks_decide_now():
                continue
            figures = interval.losses_and_norms()  # waits for the device: the loop's one synchronisation
            # Read after that wait, the clock counts the device's time; the host alone only queues work.
            # Every rank takes rank 0's clock: the rate and the average's decay follow it, and ranks on
            # clocks of their own (rank 0 draws the display while the others wait) would apply different
            # rates to the same averaged gradient and drift apart. One clock also ends every rank at once.
            self.budget.add_seconds(distributed.from_main(interval.seconds(), self.device))
            self.report(self._logged(figures, interval))
            interval.restart()
            done = self.budget.spent()
            self._stop_if_signalled()
            if self.budget.step >= next_eval or done:
                next_eval = self.budget.next_eval()
                last_eval, evaluated = self.evaluate_and_save(), True
                done = done or self.out_of_patience()
                interval.restart()
        if not evaluated:  # the budget was already spent when the run resumed
            last_eval = self.evaluate_and_save()
        self.finished = self._finished(last_eval)
        self.report(self.finished)
        return self.finished.to_dict()

    def _load_weights(self, ckpt: Checkpoint, path: Path) -> None:
        """A checkpoint's weights into the saved model, and its training weights (saved with --ema) into the
        trained one; a checkpoint without them (weights only: `best` copied over `last`) starts both alike."""
        load_weights(self.saved_model, ckpt, path)
        training = (ckpt.resume_state or {}).get("weights")
        if self.average is not None:
            load_weights(self.model, dataclasses.replace(ckpt, weights=training) if training else ckpt, path)
            self.average.restore()

    def _set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _ranks_decide_now(self) -> bool:
        # Decisions that all ranks must share (log, stop, end) are taken together at log steps;
        # a single process takes them at every step.
        if self.world.size == 1 and (self.budget.spent() or self.stop.signal is not None):
            return True
        return self.budget.log_due()

    def _stop_if_signalled(self) -> None:
        if distributed.any_rank(self.stop.signal is not None, self.device):
            self.save()
            number = self.stop.signal or signal.SIGTERM
            raise Interrupted(
                f"stopped by {signal.Signals(number).name} at step {self.budget.step}; saved "
                f"{self.run.file(LAST)}; continue with `rnngen train --resume {self.run.path}`",
                128 + number,
            )

    def evaluate_and_save(self) -> Evaluated:
        """Evaluate (each rank its share of the rows) and, on rank 0, draw the sample; then save `last`,
        and `best` when the validation loss improved. Every rank calls this and gets the same figures.
        Like evaluation, the sample is outside the budget's clock."""
        figures = score(
            self.saved_model,
            self.corpus.tokens("val"),
            self.corpus.characters("val"),
            self._rows(),
            self.cfg.seq_len,
            self.cfg.eval_tokens,
            self.device,
            self.world,
            self.corpus.unknown_bytes("val"),
            precision=self.arithmetic.precision,
        )
        result = Evaluated(step=self.budget.step, **named("val", figures))  # val_loss, ..., as metrics.jsonl has them
        self.report(result)
        if self.sampler is not None:
            self.last_sample = self.sampler(self.budget.step)
            self.report(self.last_sample)
        # Rank 0's decision, so that a last-digit difference in the summed loss cannot split the ranks.
        improved = distributed.broadcast(result.val_loss < self.best)
        if improved:
            self.best = result.val_loss
        self.evals_without_improvement = 0 if improved else self.evals_without_improvement + 1
        self.save(best=improved)
        return result

    def out_of_patience(self) -> bool:
        """Whether --patience evaluations in a row brought no lower validation loss (the same on every rank)."""
        return self.cfg.patience > 0 and self.evals_without_improvement >= self.cfg.patience

    def save(self, best: bool = False) -> None:
        """Write `last` (with all resume state) and, when asked, `best` (weights only).

        Every rank calls this (the carried states of all rows are gathered); rank 0 writes.
        """
        hidden = self.hidden if self.world.size == 1 else map_state(self.hidden, distributed.gather_rows)
        rngs = distributed.gather_objects(resume.rng_state(self.device))  # each rank draws its own dropout masks
        if self.world.is_main:
            training_weights = model_weights(self.model) if self.average is not None else None
            state = resume.capture(
                self.optimizer,
                rngs,
                self.budget.seconds,
                self.best,
                hidden,
                self.evals_without_improvement,
                training_weights,
            )
            self.report(self.saver.save(self.budget.step, self.best, state, best))
        self.saved_step = self.budget.step

    def _started(self) -> Started:
        return Started(
            run=str(self.run.path),
            device=str(self.device),
            arithmetic=self.arithmetic.line(),
            step=self.budget.step,
            parameters=sum(p.numel() for p in self.model.parameters()),
            processes=self.world.size,
            rows=self._rows(),
            train_tokens=len(self.stream.tokens),
            tokens_per_step=self._tokens_per_step(),
            steps=self.cfg.steps,
            time_budget=self.cfg.time_budget,
        )

    def _rows(self) -> int:
        """Rows of the global batch: every rank's rows together."""
        return self.cfg.batch_size * self.world.size

    def _tokens_per_step(self) -> int:
        return self._rows() * self.cfg.seq_len

    def _logged(self, figures: torch.Tensor, interval: Interval) -> Logged:
        """The log line of the interval's `figures`; an error when a step went non-finite."""
        tokens_per_s = interval.steps_per_s() * self._tokens_per_step()
        bad = interval.first_non_finite(figures)
        if bad is not None:
            kept = (
                f"kept the last good checkpoint {self.run.file(LAST)} (step {self.saved_step})"
                if self.saved_step is not None
                else "no checkpoint had been saved yet"
            )
            raise TrainingDiverged(
                f"the loss or the gradients became non-finite at step {self.budget.step - len(figures) + bad + 1}: "
                f"{kept}; start again with a lower {param('lr')} (now {self.cfg.lr:g}) or {param('clip')} "
                f"(now {self.cfg.clip:g})"
            )
        losses, norms = figures[:, 0], figures[:, 1]
        return Logged(
            step=self.budget.step,
            loss=losses.mean().item(),
            lr=self.lr,
            grad_norm=norms.mean().item(),
            clipped=(norms > self.cfg.clip).float().mean().item() if self.cfg.clip > 0 else 0.0,
            tokens_per_s=tokens_per_s,
            seconds=round(self.budget.seconds, 3),
            epoch=round(self.stream.epoch(self.budget.step), 4),
            progress=self.budget.progress(),
        )

    def _finished(self, last_eval: Evaluated | None) -> Finished:
        tokens = self.budget.step * self._tokens_per_step()
        stopped = None
        if self.out_of_patience() and not self.budget.spent():
            stopped = (
                f"stopped early at step {self.budget.step}: {self.evals_without_improvement} evaluations "
                f"without a lower validation loss (--patience {self.cfg.patience}); {self.run.file(BEST)} keeps "
                f"the best, loss {self.best:.4f}"
            )
        return Finished(
            run=str(self.run.path),
            steps=self.budget.step,
            seconds=self.budget.seconds,
            processes=self.world.size,
            tokens=tokens,
            tokens_per_s=tokens / max(self.budget.seconds, 1e-9),
            best_val_loss=self.best,
            best_val_bpc=self.run.best_val_bpc() if self.world.is_main else None,
            last_eval=last_eval,
            last_sample=self.last_sample,
            stopped=stopped,
        )
