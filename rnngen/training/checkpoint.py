"""Checkpoint files, written atomically and read without running any pickle code.

A checkpoint is one safetensors file: tensors as tensors, everything else as JSON in its metadata.
Each file is written to a temporary name in the same folder, flushed, fsynced and renamed, so a
crash or a full disk at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file

from rnngen import __version__
from rnngen.atomic import replacing
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import CheckpointError, RnngenError
from rnngen.training.runs import RunFolder, what_is_kept, write_failed

FORMAT = 1


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of `obj` in which tensors are moved to `tensors` and named by their path."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(key, str) for key in obj):
            return {key: _flatten(value, f"{prefix}.{key}", tensors) for key, value in obj.items()}
        # Optimizer state is keyed by parameter index: keep the int keys that JSON would turn to text.
        return {"__items__": [[key, _flatten(value, f"{prefix}.{key}", tensors)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(value, f"{prefix}.{i}", tensors) for i, value in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {key: _unflatten(value, tensors) for key, value in obj["__items__"]}
        return {key: _unflatten(value, tensors) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(value, tensors) for value in obj]
    return obj


@dataclass
class Checkpoint:
    """What one checkpoint file holds.

    `resume_state` (optimizer, RNG, clock, carried hidden state) is what `--resume` needs on top of
    the weights; it is None in weights-only files such as `best.safetensors`.
    """

    model: ModelConfig
    training: TrainConfig
    corpus: dict[str, Any]
    weights: dict[str, torch.Tensor]
    resume_state: dict[str, Any] | None = None
    step: int = 0
    best_val_loss: float | None = None

    def header(self) -> dict[str, Any]:
        """The JSON header: everything but the tensors (also written alone as the run's config.json)."""
        return {"format": FORMAT, "rnngen_version": __version__, "model": self.model.to_dict(),
                "train": self.training.to_dict(), "corpus": self.corpus, "step": self.step,
                "best_val_loss": self.best_val_loss}


def model_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers, each stored once (a tied head shares the embedding)."""
    weights, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            weights[name] = tensor
    return weights


def save(path: Path, ckpt: Checkpoint) -> None:
    """Write a checkpoint file atomically; a full disk or too little memory is a `CheckpointError`
    that says which checkpoint the run still has."""
    path = Path(path)
    try:
        tensors = {f"model.{name}": t.detach().cpu().contiguous() for name, t in ckpt.weights.items()}
        trainer = _flatten(ckpt.resume_state, "trainer", tensors) if ckpt.resume_state is not None else None
        metadata = {"rnngen": json.dumps(ckpt.header()), "trainer": json.dumps(trainer)}
        # Written straight to the file: serializing to bytes first needs the whole file in memory
        # twice more, and safetensors aborts the process when that allocation fails.
        with replacing(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
    except OSError as exc:
        raise write_failed(path, exc) from exc
    except BaseException as exc:
        if not _out_of_memory(exc):
            raise
        raise CheckpointError(f"cannot write checkpoint {path}: out of memory while serializing it; "
                              f"{what_is_kept(path.parent, 'free some memory (or raise `ulimit -v`)')}") from None


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: Python's MemoryError, torch's CPU allocator, or the panic that safetensors'
    Rust code raises when an allocation fails (pyo3's PanicException, a BaseException: matched by name)."""
    kind = type(exc)
    return (isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
            or (kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"))


def load(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint file; any problem is a `CheckpointError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({exc}): use another checkpoint, "
                              "e.g. best.safetensors or last.safetensors of the same run") from exc
    header, trainer = _metadata(data, path)
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} was written by rnngen {header.get('rnngen_version', '?')} in checkpoint "
                              f"format {header.get('format')}; this rnngen {__version__} reads format {FORMAT}")
    try:
        model = ModelConfig.from_dict(header.pop("model"))
        train = TrainConfig.from_dict(header.pop("train"))
    except (KeyError, TypeError, RnngenError) as exc:
        raise CheckpointError(f"{path} has an unreadable configuration ({exc})") from exc
    tensors = {name: t.to(map_location) for name, t in tensors.items()}
    weights = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    return Checkpoint(model=model, training=train, corpus=header.get("corpus", {}), weights=weights,
                      resume_state=_unflatten(trainer, tensors) if trainer is not None else None,
                      step=int(header.get("step", 0)), best_val_loss=header.get("best_val_loss"))


def _metadata(data: bytes, path: Path) -> tuple[dict[str, Any], Any]:
    # A safetensors file starts with an 8-byte little-endian header length, then the JSON header.
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8: 8 + size]).get("__metadata__") or {}
    if "rnngen" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an rnngen checkpoint")
    return json.loads(meta["rnngen"]), json.loads(meta.get("trainer", "null"))


def load_weights(model: torch.nn.Module, ckpt: Checkpoint, path: Path) -> None:
    """Copy a checkpoint's weights into `model`, with a clear error when they do not fit."""
    expected = set(model_weights(model))
    if set(ckpt.weights) != expected:
        raise CheckpointError(f"{path} does not fit this model: it lacks {sorted(expected - set(ckpt.weights))[:3]} "
                              f"and has extra {sorted(set(ckpt.weights) - expected)[:3]}")
    try:
        model.load_state_dict(ckpt.weights, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit this model: {str(exc).splitlines()[-1].strip()}") from exc


def load_model(run: RunFolder, path: Path, device: torch.device | str = "cpu"):
    """The model stored in checkpoint `path` of `run`, in eval mode, with its checked tokenizer."""
    from rnngen.models import build

    ckpt = load(path, map_location=device)
    tok = run.tokenizer(ckpt.corpus.get("tokenizer", {}).get("sha256"), ckpt.model.vocab_size)
    model = build(ckpt.model).to(device)
    load_weights(model, ckpt, path)
    return model.eval(), tok, ckpt
