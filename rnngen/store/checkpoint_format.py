"""The checkpoint file format, read without torch: the JSON header, the tensors' shapes, NumPy weights.

A checkpoint is one safetensors file: tensors as tensors, everything else as JSON in its metadata
(key "rnngen": format, configurations, corpus identity; key "trainer": what `--resume` needs).
The model's weights are stored under "model." names, a tied head once (as the embedding).

Completion on the CPU reads checkpoints here with `safetensors.numpy`, so it never imports torch.
Before any array is built, the shapes the header's configuration implies are checked against the
shapes listed in the file: a 200 kB file whose header says "hidden": 12000 is refused in
milliseconds instead of allocating gigabytes for a model it cannot fill. Weights holding NaN or inf
are refused where they are read (`check_finite`), by this reader and by torch's alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnngen import __version__
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import CheckpointError, RnngenError
from rnngen.store.schema import parameter_shapes

FORMAT = 4  # 4: "arithmetic", what the run computed in and why (rnngen.models.precision), or null


@dataclass
class Checkpoint:
    """What one checkpoint file holds.

    `weights` are torch tensors (`rnngen.models.checkpoint.load`) or NumPy arrays (`read_numpy`).
    `resume_state` (optimizer, RNG, clock, carried hidden state) is what `--resume` needs on top of
    the weights; it is None in weights-only files such as `best.safetensors`, and whenever only
    the weights were read.
    """

    model: ModelConfig
    training: TrainConfig
    corpus: dict[str, Any]
    weights: dict[str, Any]
    resume_state: dict[str, Any] | None = None
    step: int = 0
    best_val_loss: float | None = None
    sizing: dict[str, Any] | None = None  # how a time budget chose the model's shape, when it did
    # What the training computed in ("precision": fp32 or bf16), what it asked for and why; None in a file no run
    # wrote (a test's, a conversion's).
    arithmetic: dict[str, str] | None = None

    def header(self) -> dict[str, Any]:
        """The JSON header: everything but the tensors (also written alone as the run's config.json)."""
        return {
            "format": FORMAT,
            "rnngen_version": __version__,
            "model": self.model.to_dict(),
            "train": self.training.to_dict(),
            "corpus": self.corpus,
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "sizing": self.sizing,
            "arithmetic": self.arithmetic,
        }


@dataclass
class Header:
    """A checkpoint's header, read and checked: the configurations and the file's tensor shapes."""

    model: ModelConfig
    training: TrainConfig
    corpus: dict[str, Any]
    step: int
    best_val_loss: float | None
    sizing: dict[str, Any] | None
    arithmetic: dict[str, str] | None
    trainer: Any  # the flattened resume state (JSON with tensor names), None in weights-only files
    shapes: dict[str, tuple[int, ...]]  # every tensor in the file


def read_header(path: Path) -> Header:
    """The checked header of checkpoint `path`; no tensor is read. Any problem is a `CheckpointError`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(path, framework="numpy") as file:
            meta = file.metadata() or {}
            shapes = {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a safetensors file ({exc}): use another checkpoint, "
            "e.g. best.safetensors or last.safetensors of the same run"
        ) from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if "rnngen" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an rnngen checkpoint")
    try:
        header, trainer = json.loads(meta["rnngen"]), json.loads(meta["trainer"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} has an unreadable header ({exc})") from exc
    check_format(path, header)
    try:
        model = ModelConfig.from_dict(header["model"])
        train = TrainConfig.from_dict(header["train"])
        corpus, step, best_val_loss = header["corpus"], int(header["step"]), header["best_val_loss"]
        sizing, arithmetic = header["sizing"], header["arithmetic"]
        for name, value in (("sizing", sizing), ("arithmetic", arithmetic)):
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{name} is {type(value).__name__}, not an object")
    except (KeyError, TypeError, ValueError, RnngenError) as exc:
        raise CheckpointError(f"{path} has an unreadable configuration ({exc})") from exc
    check_shapes(
        path, model, {name[len("model.") :]: shape for name, shape in shapes.items() if name.startswith("model.")}
    )
    return Header(
        model=model,
        training=train,
        corpus=corpus,
        step=step,
        best_val_loss=best_val_loss,
        sizing=sizing,
        arithmetic=arithmetic,
        trainer=trainer,
        shapes=shapes,
    )


def stored_header(path: Path) -> dict[str, Any]:
    """The JSON header of checkpoint `path` as the file stores it (what a run's config.json holds), once
    `read_header` has checked it."""
    from safetensors import safe_open

    read_header(path)
    with safe_open(path, framework="numpy") as file:
        return json.loads(file.metadata()["rnngen"])


def check_format(path: Path, header: Any) -> None:
    """Refuse a checkpoint header, or a run's config.json, of another format than this rnngen's `FORMAT`."""
    found = header.get("format") if isinstance(header, dict) else None
    if found != FORMAT:
        newer = isinstance(found, int) and found > FORMAT
        fix = "upgrade rnngen to read it" if newer else "train the run again with this rnngen"
        raise CheckpointError(f"{path} is checkpoint format {found}; this rnngen reads format {FORMAT}: {fix}")


def check_shapes(path: Path, config: ModelConfig, found: dict[str, tuple[int, ...]]) -> None:
    """Refuse a file whose weights are not exactly those its model configuration implies (`schema.parameter_shapes`)."""
    expected = parameter_shapes(config)
    if set(found) != set(expected):
        lacks, extra = sorted(set(expected) - set(found))[:3], sorted(set(found) - set(expected))[:3]
        raise CheckpointError(
            f"{path} does not fit its own model configuration: it lacks {lacks} and has extra "
            f"{extra}; use another checkpoint of the run"
        )
    wrong = [name for name in expected if tuple(found[name]) != expected[name]]
    if wrong:
        name = wrong[0]
        raise CheckpointError(
            f"{path} does not fit its own model configuration: {name} is "
            f"{list(found[name])} where {config.kind} embed={config.embed} hidden={config.hidden} "
            f"vocab={config.vocab_size} needs {list(expected[name])}; the header is damaged: "
            "use another checkpoint of the run"
        )


def check_finite(path: Path, weights: dict[str, Any]) -> None:
    """Refuse model weights (NumPy arrays or CPU torch tensors) that hold NaN or inf: such a model completes with
    one repeated piece and evaluates to a loss of nan. One `np.isfinite` pass over each array, a fraction of the
    time reading them takes."""
    import numpy as np

    for name, array in weights.items():
        if not np.isfinite(np.asarray(array)).all():  # asarray: a CPU tensor's own memory, not a copy
            raise CheckpointError(
                f"{path} holds non-finite weights (NaN or inf in {name}): it cannot be used; resume from an "
                "earlier checkpoint or train again"
            )


def read_numpy(path: Path) -> Checkpoint:
    """The checkpoint's configuration and model weights as float32 NumPy arrays (no torch, no resume state)."""
    import numpy as np
    from safetensors import safe_open

    header = read_header(path)
    with safe_open(path, framework="numpy") as file:
        weights = {
            name[len("model.") :]: np.asarray(file.get_tensor(name), dtype=np.float32)
            for name in header.shapes
            if name.startswith("model.")
        }
    check_finite(path, weights)
    return Checkpoint(
        model=header.model,
        training=header.training,
        corpus=header.corpus,
        weights=weights,
        step=header.step,
        best_val_loss=header.best_val_loss,
        sizing=header.sizing,
        arithmetic=header.arithmetic,
    )
