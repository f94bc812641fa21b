"""Checkpoint files with torch: saving (atomically) and loading for training, resume and evaluation.

The format, and reading it without torch, is `rnngen.store.checkpoint_format`. Each file is
written to a temporary name in the same folder, flushed, fsynced and renamed, so a crash or a full
disk at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file

from rnngen.data.tokenizer import load_checked
from rnngen.errors import CheckpointError
from rnngen.store.atomic import replacing, strict_json
from rnngen.store.checkpoint_format import FORMAT, Checkpoint, check_finite, read_header
from rnngen.store.runs import RunFolder, what_is_kept, write_failed

__all__ = ["FORMAT", "Checkpoint", "save", "load", "load_weights", "load_model", "model_weights"]


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
    if isinstance(obj, list):
        return [_flatten(value, f"{prefix}.{i}", tensors) for i, value in enumerate(obj)]
    if isinstance(obj, tuple):
        # Kept apart from lists, which JSON would make of them: an LSTM's carried state is the tuple (h, c).
        return {"__tuple__": [_flatten(value, f"{prefix}.{i}", tensors) for i, value in enumerate(obj)]}
    return obj


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {key: _unflatten(value, tensors) for key, value in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(_unflatten(value, tensors) for value in obj["__tuple__"])
        return {key: _unflatten(value, tensors) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(value, tensors) for value in obj]
    return obj


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
        metadata = {"rnngen": strict_json(ckpt.header()), "trainer": strict_json(trainer)}
        # Written straight to the file: serializing to bytes first needs the whole file in memory
        # twice more, and safetensors aborts the process when that allocation fails.
        with replacing(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
    except OSError as exc:
        raise write_failed(path, exc) from exc
    except BaseException as exc:
        if not _out_of_memory(exc):
            raise
        raise CheckpointError(
            f"cannot write checkpoint {path}: out of memory while serializing it; "
            f"{what_is_kept(path.parent, 'free some memory (or raise `ulimit -v`)')}"
        ) from None


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: Python's MemoryError, torch's CPU allocator, or the panic that safetensors'
    Rust code raises when an allocation fails (pyo3's PanicException, a BaseException: matched by name)."""
    kind = type(exc)
    return (
        isinstance(exc, MemoryError)
        or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
        or (kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime")
    )


def load(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint file; any problem is a `CheckpointError` naming the file.

    The header and the tensors' shapes are checked (`checkpoint_format.read_header`) before any
    tensor is read, and the weights' values after (`checkpoint_format.check_finite`).
    """
    path = Path(path)
    header = read_header(path)
    try:
        tensors = load_tensors(path.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a safetensors file ({exc}): use another checkpoint, "
            "e.g. best.safetensors or last.safetensors of the same run"
        ) from exc
    weights = {name[len("model.") :]: t for name, t in tensors.items() if name.startswith("model.")}
    check_finite(path, weights)  # on the CPU, before they move: the check reads them as NumPy arrays
    tensors = {name: t.to(map_location) for name, t in tensors.items()}
    weights = {name[len("model.") :]: t for name, t in tensors.items() if name.startswith("model.")}
    trainer = header.trainer
    return Checkpoint(
        model=header.model,
        training=header.training,
        corpus=header.corpus,
        weights=weights,
        resume_state=_unflatten(trainer, tensors) if trainer is not None else None,
        step=header.step,
        best_val_loss=header.best_val_loss,
        sizing=header.sizing,
        arithmetic=header.arithmetic,
    )


def load_weights(model: torch.nn.Module, ckpt: Checkpoint, path: Path) -> None:
    """Copy a checkpoint's weights into `model`, with a clear error when they do not fit."""
    expected = set(model_weights(model))
    if set(ckpt.weights) != expected:
        raise CheckpointError(
            f"{path} does not fit this model: it lacks {sorted(expected - set(ckpt.weights))[:3]} "
            f"and has extra {sorted(set(ckpt.weights) - expected)[:3]}"
        )
    try:
        model.load_state_dict(ckpt.weights, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit this model: {str(exc).splitlines()[-1].strip()}") from exc


def load_model(run: RunFolder, path: Path, device: torch.device | str = "cpu"):
    """The model stored in checkpoint `path` of `run`, in eval mode, with its checked tokenizer."""
    from rnngen.models import build

    ckpt = load(path, map_location=device)
    tok = load_checked(run.tokenizer_path, ckpt.corpus, ckpt.model.vocab_size)
    model = build(ckpt.model).to(device)
    load_weights(model, ckpt, path)
    return model.eval(), tok, ckpt
