"""Sizing a run for its time budget: the model width (and batch) that reaches the lowest held-out loss with the
tokens this machine can train in the time given.

A preset names its candidate shapes (`Preset.sizes`). Before a new run with a time budget trains, each candidate
trains a few windows (`pace`), which says how many tokens the budget buys with it on this machine, as loaded as it
is now; a fitted rule (`LossFit`) predicts each candidate's held-out bits per character from its size, those tokens
and the passes they make over the corpus; the lowest prediction wins (`choose`). The probe's seconds are taken from
the budget; a budget too short to spare them trains the smallest candidate unprobed. The rule's form is the
parametric fit of Hoffmann et al. 2022 (approach 3), loss = E + A / N^alpha + B / D^beta, with N the recurrent
parameters (Kaplan et al. 2020 count no embedding) and D the tokens discounted for repetition as Muennighoff et al.
2023 do; its coefficients were fitted on rnngen's own runs (docs/tuning.md), and it predicts no gain from passes over
the text beyond those runs'.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnngen.config import MIN_PROBED_BUDGET, ModelConfig, TrainConfig
from rnngen.store.schema import EMBEDDING, HEAD_BIAS, HEAD_WEIGHT, PROJECTION, parameter_shapes
from rnngen.training.distributed import World

# A user's value for any of these keeps the preset's shape, with that value: the rule was fitted on the
# candidates' shapes alone.
SHAPE_FIELDS = frozenset({"kind", "hidden", "embed", "layers", "batch_size", "seq_len", "impl"})
# The probe: windows trained before the clock starts (the first builds the kernels), then the windows timed.
WARM_WINDOWS, TIMED_WINDOWS = 1, 2
# No candidate is probed once the probe has taken this share of the budget.
PROBE_SHARE = 0.05
# A budget the probe ate whole still trains this long, and ends in a saved, evaluated run.
MIN_TRAINING_SECONDS = 1.0


@dataclass(frozen=True)
class LossFit:
    """The held-out bits per character a model of N recurrent parameters trained on D tokens of a text of U distinct
    training tokens loses above an offset that is the text's, the same for every shape (the fit's E):
    a * decay(N/1e6, alpha) + b * decay(D'/1e6, beta), where D' discounts repeated passes and D stops at the most
    passes the fit saw. The rule compares shapes without the offset."""

    a: float
    alpha: float
    b: float
    beta: float
    # Muennighoff et al.'s R*: after about this many repeated passes, more repetition adds almost nothing (inf: the
    # runs showed no discount).
    repeats: float
    # The most passes over the text among the runs fitted: past them the held-out loss may rise again (overfitting,
    # which the form cannot express), so more tokens predict no gain, and of two shapes both past them the larger wins.
    passes: float

    def excess(self, parameters: int, tokens: float, unique: int) -> float:
        """The predicted bits per character above the text's offset."""
        if tokens <= 0:
            return math.inf
        seen = effective_tokens(min(tokens, self.passes * unique), unique, self.repeats)
        return float(self.a * decay(parameters / 1e6, self.alpha) + self.b * decay(seen / 1e6, self.beta))


def decay(x: Any, power: float) -> Any:
    """How the loss falls with size or tokens x (a float or an array): x^-power, and at power 0 its limit -ln x
    (that of (x^-power - 1) / power, whose constant the offset absorbs), the bound a fit of three widths reaches."""
    return np.power(x, -power) if power > 0 else -np.log(x)


def effective_tokens(tokens: float, unique: int, repeats: float) -> float:
    """Tokens trained on, the repeated ones discounted (Muennighoff et al. 2023, "Scaling data-constrained
    language models", eq. 5): the first pass counts in full, and R passes more add U * R* * (1 - exp(-R / R*));
    R* = inf counts every pass in full."""
    if tokens <= unique or math.isinf(repeats):
        return tokens
    again = tokens / unique - 1
    return unique * (1 + repeats * (1 - math.exp(-again / repeats)))


# One fit per kind of tokenizer (a character and a subword differ in what a token holds), printed by
# `python -m benchmarks sizing --fit benchmarks/sizing_runs.jsonl` (docs/tuning.md#sized-for-the-clock); a power of
# 0 is the log, the bound a fit reaches when its runs cannot tell a small power from it.
FITS = {
    "char": LossFit(a=0.0766, alpha=0.0, b=0.2596, beta=1.1, repeats=math.inf, passes=7.97),
    "subword": LossFit(a=0.0606, alpha=0.0, b=0.187, beta=0.0, repeats=3.0, passes=9.29),
}


def fit_for(tokenizer: str) -> LossFit:
    """The rule for a corpus whose tokenizer is of type `tokenizer` (meta.json's "type")."""
    return FITS["char" if tokenizer == "char" else "subword"]


def recurrent_parameters(model: ModelConfig) -> int:
    """The parameters of the recurrent layers: the model's size as the rule counts it, the vocabulary's
    embedding and head left out (Kaplan et al. 2020)."""
    outside = {EMBEDDING, HEAD_WEIGHT, HEAD_BIAS, PROJECTION}
    return sum(math.prod(shape) for name, shape in parameter_shapes(model).items() if name not in outside)


def sized_configs(
    model: ModelConfig, train: TrainConfig, sizes: tuple[tuple[int, int], ...], overrides: dict[str, Any]
) -> list[tuple[ModelConfig, TrainConfig]]:
    """The candidates a run chooses among: `model` and `train` at each (width, batch rows) of `sizes`; none when the
    budget is not only a time (a step count has no clock to fit), or when the user named a shape field."""
    if train.steps is not None or train.time_budget is None or SHAPE_FIELDS & set(overrides):
        return []
    return [
        (dataclasses.replace(model, hidden=width, embed=width), dataclasses.replace(train, batch_size=rows))
        for width, rows in sizes
    ]


def pace(
    model: ModelConfig,
    train: TrainConfig,
    tokens: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Training tokens per second of `model` with `train`'s batch on its device, from a few windows of `tokens`
    trained as the run will train them (the weights are thrown away)."""
    from rnngen.data.streams import TokenStream
    from rnngen.models.precision import resolve
    from rnngen.training.build import build_for_training
    from rnngen.training.trainer import train_step, window_on

    setup = build_for_training(model, train, World())
    stream = TokenStream(tokens, train.batch_size, train.seq_len)
    hidden, started = None, 0.0
    for index in range(WARM_WINDOWS + TIMED_WINDOWS):
        if index == WARM_WINDOWS:
            started = clock()
        batch = window_on(stream, index, setup.device)
        loss, _, hidden = train_step(
            setup.train_model,
            setup.model,
            setup.optimizer,
            batch,
            hidden,
            train.clip or math.inf,
            setup.device,
            resolve(train.precision, setup.device, model).precision,
        )
        loss.item()  # waits for the device
    return TIMED_WINDOWS * train.batch_size * train.seq_len / max(clock() - started, 1e-9)


@dataclass(frozen=True)
class Option:
    """One candidate as the probe saw it; a candidate chosen unprobed has no pace nor prediction (None)."""

    width: int
    batch_size: int
    parameters: int  # recurrent parameters
    tokens_per_s: float | None
    excess_bpc: float | None  # the rule's prediction above the text's offset


@dataclass(frozen=True)
class Sizing:
    """The shape a run chose for its time budget, and why: every candidate's pace and prediction (none when the
    budget was too short to probe)."""

    chosen: Option
    options: tuple[Option, ...]
    time_budget: float  # the seconds asked for
    probe_seconds: float  # taken from them
    layers: int
    train_tokens: int

    @property
    def seconds(self) -> float:
        """The seconds a probed run trains."""
        return _training_seconds(self.time_budget, self.probe_seconds)

    def line(self) -> str:
        """The one line the display shows: the shape chosen, the tokens it buys, and what the others would have; or
        why no probe chose it."""
        shape = f"{self.layers}x{self.chosen.width}, batch {self.chosen.batch_size}"
        if self.chosen.tokens_per_s is None:
            return (
                f"sized for the clock: {shape}, the smallest candidate, not probed: {self.time_budget:g} s is too "
                f"short to spend a probe of a few seconds on (a budget of {MIN_PROBED_BUDGET:g} s or more measures "
                "each candidate)"
            )
        others = " and ".join(
            f"{self.layers}x{o.width} {_human(o.tokens_per_s * self.seconds)}" for o in self.options if o != self.chosen
        )
        tokens = self.chosen.tokens_per_s * self.seconds
        bought = f"{_human(tokens)} tokens ({tokens / self.train_tokens:.1f} passes)"
        where = f", where {others} would train" if others else ""
        return (
            f"sized for the clock: {shape}: {bought} in {self.time_budget:g} s on this machine{where} "
            f"(probe {self.probe_seconds:.1f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _training_seconds(budget: float, probe: float) -> float:
    """What a probe of `probe` seconds leaves of `budget` to train, and at least `MIN_TRAINING_SECONDS`."""
    return max(budget - probe, MIN_TRAINING_SECONDS)


def _human(count: float) -> str:
    return f"{count / 1e6:.1f}M" if count >= 1e6 else f"{count / 1e3:.0f}k"


def choose(
    candidates: list[tuple[ModelConfig, TrainConfig]],
    tokens: np.ndarray,
    tokenizer: str,
    clock: Callable[[], float] = time.perf_counter,
    measure: Callable[[ModelConfig, TrainConfig, np.ndarray], float] | None = None,
) -> tuple[ModelConfig, TrainConfig, Sizing]:
    """The candidate with the lowest predicted loss at the tokens its pace buys in the budget, its
    training configuration's budget less the probe's seconds, and the record of the choice. `candidates` come
    smallest first: those left when the probe has taken `PROBE_SHARE` of the budget are not probed, and a budget
    under `MIN_PROBED_BUDGET` trains the smallest unprobed. `measure` is `pace` unless a test hands in another."""
    rule, measure = fit_for(tokenizer), measure or pace
    budget = candidates[0][1].time_budget
    if budget < MIN_PROBED_BUDGET:
        model, train = candidates[0]
        chosen = Option(model.hidden, train.batch_size, recurrent_parameters(model), None, None)
        return model, train, Sizing(chosen, (), budget, 0.0, model.layers, len(tokens))
    started = clock()
    paces = []
    for model, train in candidates:  # the smallest first: on a slow machine the large ones are not worth probing
        if paces and clock() - started > PROBE_SHARE * budget:
            break
        paces.append(measure(model, train, tokens))
    probe = clock() - started
    left = _training_seconds(budget, probe)
    sizes = [recurrent_parameters(model) for model, _ in candidates]
    options = tuple(
        Option(model.hidden, train.batch_size, size, speed, rule.excess(size, speed * left, len(tokens)))
        for (model, train), size, speed in zip(candidates, sizes, paces)
    )
    best = min(range(len(options)), key=lambda i: options[i].excess_bpc)
    model, train = candidates[best]
    sizing = Sizing(options[best], options, budget, probe, model.layers, len(tokens))
    return model, dataclasses.replace(train, time_budget=left), sizing
