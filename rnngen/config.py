"""Typed configuration: what a model is, how it is trained, how it samples.

Model and training configurations are saved inside every checkpoint, so a checkpoint alone is
enough to resume training or to sample. Values are checked once, here, where they come in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from rnngen.errors import RnngenError, param

MODEL_KINDS = ("rnn", "lstm", "gru", "mingru", "minlstm")
MIN_KINDS = ("mingru", "minlstm")
IMPLS = ("fused", "scratch")
DEVICES = ("auto", "cpu", "cuda", "mps")
# "auto": bf16 autocast where the device computes bf16 natively (CUDA since Ampere; x86 CPUs with AVX512-BF16 or
# AMX) and the model runs in it, float32 elsewhere; the weights and the optimizer stay float32 either way. What a
# request resolves to on a device is rnngen.models.precision.resolve.
PRECISIONS = ("auto", "fp32", "bf16")
MAX_SEED = 2**63 - 1  # torch takes 64 bits; each process of a data-parallel run adds its rank


# What each annotation of a configuration field admits, and how a message names it.
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "True or False"),
    "str": ((str,), "a string"),
}


def check_types(config: Any) -> None:
    """Refuse a field whose value is not of its annotated type, naming the parameter and the type it got: the
    one type check of every configuration, for the Python API and the command line alike."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        annotation = str(spec.type)
        if value is None and annotation.endswith("| None"):
            continue
        if annotation == "tuple[str, ...]":
            ok = isinstance(value, tuple) and all(isinstance(item, str) for item in value)
            wanted = "a tuple of strings"
        else:
            kinds, wanted = _TYPES[annotation.removesuffix(" | None")]
            # bool is an int to Python, never a count or a rate to a user.
            ok = isinstance(value, kinds) and (kinds == (bool,) or not isinstance(value, bool))
        if not ok:
            raise RnngenError(f"{param(spec.name)} must be {wanted}, got {value!r} ({type(value).__name__})")


class JsonConfig:
    """A configuration saved as JSON inside checkpoints."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The configuration from its JSON; fields this version does not know are an error."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise RnngenError(f"{cls.__name__} has unknown fields {unknown}: it was written by another rnngen version")
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig(JsonConfig):
    """A recurrent language model: embedding -> `layers` recurrent layers -> head over the vocabulary."""

    kind: str = "lstm"
    vocab_size: int = 0
    embed: int = 512
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.0
    tie: bool = True
    # "fused": PyTorch's layers (cuDNN on GPU); "scratch": the lecture's cells unrolled in Python,
    # whose GRU is the lecture's: reset before the product (Cho et al. 2014) and h = (1-z)h + z h'
    # (Chung et al. 2014's direction), where cuDNN resets after the product and keeps the old state with z.
    impl: str = "fused"

    def __post_init__(self) -> None:
        check_types(self)
        if self.kind not in MODEL_KINDS:
            raise RnngenError(f"unknown model {self.kind!r}: choose one of {', '.join(MODEL_KINDS)}")
        if self.impl not in IMPLS:
            raise RnngenError(f"unknown {param('impl')} {self.impl!r}: choose one of {', '.join(IMPLS)}")
        if self.impl == "scratch" and self.kind in MIN_KINDS:
            raise RnngenError(f"{param('impl')} scratch is for rnn, lstm and gru; {self.kind} has one implementation")
        for name in ("embed", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise RnngenError(f"{param(name)} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise RnngenError(f"{param('dropout')} must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """How a model is trained. `steps` and `time_budget` (seconds) end training, whichever comes first."""

    batch_size: int = 16
    seq_len: int = 64
    lr: float = 1e-2
    min_lr_ratio: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.3
    # Evaluate, sample and save a moving average of the weights whose time constant is this share of
    # the run (rnngen.training.averaging); 0 keeps the last weights. A tenth: a fifth lags behind weights
    # still improving after a few passes with char, a twentieth keeps too little with subword (docs/tuning.md).
    ema: float = 0.1
    clip: float = 1.0
    steps: int | None = None
    time_budget: float | None = 180.0
    eval_every: int = 200
    # Validation tokens read per evaluation; 0 reads the whole split.
    eval_tokens: int = 100_000
    log_every: int = 10
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    # At each evaluation rank 0 completes a fixed prompt (None: the corpus's own, see training.samples).
    samples: bool = True
    sample_prompt: str | None = None
    # Stop after this many evaluations in a row without a lower validation loss; 0 never stops early.
    patience: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if self.steps is None and self.time_budget is None:
            raise RnngenError(f"training needs a budget: pass {param('steps')} N or {param('time_budget')} SECONDS")
        # NaN passes every comparison below and inf trains forever or not at all: numbers must be finite.
        numbers = {
            "lr": self.lr,
            "min_lr_ratio": self.min_lr_ratio,
            "weight_decay": self.weight_decay,
            "ema": self.ema,
            "clip": self.clip,
            "time_budget": self.time_budget,
            "steps": self.steps,
        }
        for name, value in numbers.items():
            if value is not None and not math.isfinite(value):
                raise RnngenError(f"{param(name)} must be a finite number, got {value}")
        if self.steps is not None and self.steps < 1:
            raise RnngenError(f"{param('steps')} must be at least 1, got {self.steps}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise RnngenError(f"{param('time_budget')} must be positive, got {self.time_budget}")
        if not 0 <= self.ema <= 1:
            raise RnngenError(f"{param('ema')} must be from 0 (off) to 1, got {self.ema}")
        if self.weight_decay < 0:
            raise RnngenError(f"{param('weight_decay')} must be >= 0, got {self.weight_decay}")
        if not 0 <= self.seed <= MAX_SEED:
            raise RnngenError(f"{param('seed')} must be from 0 to {MAX_SEED}, got {self.seed}")
        if self.warmup < 0:
            raise RnngenError(f"{param('warmup')} must be >= 0, got {self.warmup}")
        positive = {
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "eval_every": self.eval_every,
            "log_every": self.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise RnngenError(f"{param(name)} must be at least 1, got {value}")
        if self.lr <= 0:
            raise RnngenError(f"{param('lr')} must be positive, got {self.lr}")
        if self.patience < 0:
            raise RnngenError(f"{param('patience')} must be >= 0 (0 turns it off), got {self.patience}")
        if self.clip < 0:
            raise RnngenError(f"{param('clip')} must be >= 0 (0 turns clipping off), got {self.clip}")
        if self.device not in DEVICES:
            raise RnngenError(f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise RnngenError(f"unknown {param('precision')} {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.eval_tokens < 0:
            raise RnngenError(f"{param('eval_tokens')} must be >= 0 (0 reads the whole split), got {self.eval_tokens}")
        if 0 < self.eval_tokens < self.seq_len + 1:
            raise RnngenError(
                f"{param('eval_tokens')} {self.eval_tokens} is less than one window of {param('seq_len')} + 1 = "
                f"{self.seq_len + 1} tokens: pass at least that, or 0 for the whole split"
            )


# A completion keeps a record of each token it wrote (a few hundred bytes): a million tokens is some hundred MB,
# and a far longer request is a typo rather than a text anyone reads.
MAX_TOKENS = 1_000_000


# Beyond these a filter means nothing more (no vocabulary has a billion tokens) and a penalty would push logits out of
# float32's range.
MAX_TOP_K = 2**30
MAX_PENALTY = 1e6


@dataclass(frozen=True)
class SampleConfig:
    """How tokens are drawn. temperature 0 is greedy decoding; top_k 0 and top_p 1 switch those filters off."""

    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_types(self)
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise RnngenError(f"{param('max_tokens')} must be from 1 to {MAX_TOKENS:,}, got {self.max_tokens}")
        if not 0 <= self.temperature < float("inf"):  # also refuses NaN; inf would draw uniformly
            raise RnngenError(f"{param('temperature')} must be >= 0 and finite (0 is greedy), got {self.temperature}")
        if not 0 <= self.top_k <= MAX_TOP_K:
            raise RnngenError(f"{param('top_k')} must be from 1 to {MAX_TOP_K:,} (or 0 for no limit), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise RnngenError(f"{param('top_p')} must be in (0, 1], got {self.top_p}")
        if not 1 / MAX_PENALTY <= self.repetition_penalty <= MAX_PENALTY:  # also refuses NaN
            raise RnngenError(
                f"{param('repetition_penalty')} must be from {1 / MAX_PENALTY:g} to {MAX_PENALTY:g} (1 is off), "
                f"got {self.repetition_penalty}"
            )
        if any(not stop for stop in self.stop):
            raise RnngenError(f"{param('stop')} must not be empty: an empty string would end every completion at once")
        if self.seed is not None and not -(2**63) <= self.seed < 2**64:
            raise RnngenError(f"{param('seed')} must fit in 64 bits (from -2**63 to 2**64 - 1), got {self.seed}")


# Below this time budget (seconds) a preset's sizing (rnngen.training.sizing) trains its smallest candidate unprobed:
# the first candidate's probe alone (about 3 s on a 2-core machine) would take a tenth of it or more, and below it the
# rule chooses the smallest at every pace up to three times the fastest measured (docs/tuning.md#sized-for-the-clock).
MIN_PROBED_BUDGET = 30.0


@dataclass(frozen=True)
class Preset:
    """Model sizes and a training recipe for a device and a time budget; every value can be overridden.

    `sizes` are the (width, batch rows) a run given only a time budget chooses among for the tokens that budget
    buys on its machine (`rnngen.training.sizing`); `model` and `train` hold the shape a step budget keeps. How
    each was chosen, with the measurements, is in docs/tuning.md.
    """

    model: ModelConfig
    train: TrainConfig
    sizes: tuple[tuple[int, int], ...] = ()


# The `cpu` preset is the configurations' defaults: there is one source for each value.
PRESETS: dict[str, Preset] = {
    # Seconds long: a smoke test of the whole path.
    "tiny": Preset(
        ModelConfig(embed=64, hidden=64, layers=1),
        TrainConfig(
            batch_size=8,
            seq_len=32,
            warmup=5,
            weight_decay=0.01,
            steps=100,
            time_budget=None,
            eval_every=50,
            eval_tokens=20_000,
            log_every=5,
        ),
    ),
    # Three minutes on 2 CPU cores: a time budget alone trains the one of `sizes` its clock buys the lowest loss with
    # (docs/tuning.md#sized-for-the-clock); a step budget trains the 2x512, the winner of `python -m benchmarks sweep`.
    "cpu": Preset(ModelConfig(), TrainConfig(), sizes=((256, 32), (384, 32), (512, 16))),
    # Fifteen minutes on one GPU; a wider, deeper model, bf16 autocast.
    "gpu": Preset(
        ModelConfig(hidden=1024, layers=3, dropout=0.2),
        TrainConfig(
            batch_size=64,
            seq_len=128,
            lr=2e-3,
            weight_decay=0.01,
            time_budget=900.0,
            eval_every=500,
            eval_tokens=1_000_000,
        ),
    ),
}
