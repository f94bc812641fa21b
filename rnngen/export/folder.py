"""`rnngen export`: a run's model as a folder any ONNX Runtime can complete prompts from, or as a static web page.

The `onnx` folder holds `model.onnx` (`rnngen.export.graph`), the run's `tokenizer.model` and `model.json`, what a
runtime needs besides them: the graph's inputs and outputs, the state's names and shapes, the special tokens, the
ids a prompt follows (the start of a document, as `rnngen complete` reads a prompt) and each token's bytes (to
decode without sentencepiece). The `web` folder adds the page (`rnngen.export.web`).

The folder is written beside its target under a temporary name and renamed into place once whole: an export that
fails leaves nothing behind, and `force` replaces an earlier export only once the new one is complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnngen import __version__
from rnngen.errors import RnngenError, param
from rnngen.store.atomic import strict_json
from rnngen.store.locations import checkpoints_dir

FORMATS = ("onnx", "web")
QUANTIZATIONS = ("int8",)
GRAPH, RUNTIME, TOKENIZER = "model.onnx", "model.json", "tokenizer.model"
RUNTIME_FORMAT = 1  # model.json's layout; a change a runtime must know of raises it
# The text after the start of a document on which every exported graph is held to rnngen's model.
CHECK_TEXT = "The model reads a prompt, then writes one token at a time.\n"


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the folder, each file's size in bytes (by its path in the folder), and the largest
    difference between the graph's logits and rnngen's on `CHECK_TEXT`."""

    folder: Path
    sizes: dict[str, int]
    difference: float


def export(
    checkpoint: str,
    out: str | os.PathLike,
    format: str = "onnx",
    quantize: str | None = None,
    force: bool = False,
    checkpoints: str | os.PathLike | None = None,
) -> Exported:
    """Write the model of `checkpoint` (a run name or folder under `checkpoints`, a .safetensors file or
    hf:USER/NAME) to the folder `out` as `format` ("onnx" or "web"), its weights in float32 or, with
    `quantize="int8"`, in int8 (ONNX Runtime's dynamic quantization). `out` may not exist yet, or be an empty folder;
    `force` replaces an earlier export there."""
    if format not in FORMATS:
        raise RnngenError(f"unknown {param('format')} {format!r}: choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise RnngenError(f"unknown {param('quantize')} {quantize!r}: choose {', '.join(QUANTIZATIONS)} or none")
    from rnngen.store.resolve import require_tokenizer, resolve_checkpoint

    out = Path(out)
    _require_free(out, force)
    _require_onnx()
    run, path = resolve_checkpoint(checkpoint, checkpoints_dir(checkpoints))
    require_tokenizer(run)
    packages = None
    if format == "web":  # after every quick check, before the model is read: the one step that may need the network
        from rnngen.export.web import npm_packages

        packages = npm_packages()
    return _write(run, path, out, quantize, packages)


def _write(run: Any, path: Path, out: Path, quantize: str | None, packages: Path | None) -> Exported:
    from rnngen.export.graph import TOLERANCE, check_graph, write_graph
    from rnngen.generation.completer import Completer, starts_documents
    from rnngen.generation.numpy_lm import NumpyLM
    from rnngen.models.checkpoint import load_model

    model, tok, ckpt = load_model(run, path)
    completer = Completer(NumpyLM.from_module(model), tok, starts_documents(ckpt.corpus))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _beside(out)
    staging.mkdir()  # with the mode a plain mkdir gives (mkdtemp's 0700 would keep a static host from serving it)
    try:
        graph = staging / GRAPH
        write_graph(model, graph, quantize)
        # int8 weights change the logits by design: their difference is told, not held to the float tolerance.
        tolerance = float("inf") if quantize else TOLERANCE
        difference = check_graph(graph, completer.lm, completer.document(tok.encode(CHECK_TEXT)), tolerance)
        shutil.copyfile(run.tokenizer_path, staging / TOKENIZER)
        info = runtime_info(run.name, path.name, ckpt, tok, completer.document([]), quantize)
        (staging / RUNTIME).write_text(strict_json(info, indent=1) + "\n")
        if packages is not None:
            from rnngen.export.web import write_page

            write_page(staging, packages)
        _put_in_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    sizes = {str(file.relative_to(out)): file.stat().st_size for file in sorted(out.rglob("*")) if file.is_file()}
    return Exported(out, sizes, difference)


def runtime_info(run: str, checkpoint: str, ckpt: Any, tok: Any, start: list[int], quantize: str | None) -> dict:
    """model.json: what a runtime needs besides the graph and the tokenizer (see the module and docs/export.md)."""
    from rnngen.export.graph import LOGITS, OPSET, TOKENS, state_names

    config = ckpt.model
    names = state_names(config)
    return {
        "format": RUNTIME_FORMAT,
        "exported_by": f"rnngen {__version__}",
        "run": run,
        "checkpoint": checkpoint,
        "step": ckpt.step,
        "model": config.to_dict(),
        "graph": {
            "file": GRAPH,
            "opset": OPSET,
            "weights": quantize or "float32",
            "inputs": [TOKENS, *(name for name, _ in names)],
            "outputs": [LOGITS, *(name for _, name in names)],
        },
        # Each part of the state, zeros at the start of a document; batch rows are axis 1.
        "state": [
            {"input": name, "output": output, "shape": [config.layers, 1, config.hidden], "batch_axis": 1}
            for name, output in names
        ],
        "tokenizer": {"file": TOKENIZER, "vocab_size": tok.vocab_size, "byte_fallback": tok.lossless},
        "special_tokens": {
            "end_of_text": tok.eot_id,
            "unknown": tok.unk_id,
            "newline": tok.sp.piece_to_id("\n"),
        },
        "start": start,
        # Each token's UTF-8 bytes in hex (a byte piece holds part of a character): decoding is joining them.
        "pieces": [piece.hex() for piece in tok.piece_bytes],
    }


def _require_free(out: Path, force: bool) -> None:
    """Refuse an `out` that holds something, unless `force` and it is an earlier export (a folder with model.json
    that names rnngen): `force` never removes a folder of anything else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not force:
        raise RnngenError(f"{out} already exists: pass {param('force')} to replace it, or another {param('out')}")
    if not _an_export(out):
        raise RnngenError(
            f"{out} exists and is not a folder rnngen export wrote, so {param('force')} leaves it alone: "
            f"remove it yourself or pass another {param('out')}"
        )


def _an_export(folder: Path) -> bool:
    try:
        info = json.loads((folder / RUNTIME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and str(info.get("exported_by", "")).startswith("rnngen ")


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RnngenError(
            f"rnngen export needs {exc.name or 'onnx'}: pip install 'rnngen[export]' (onnx and onnxruntime)"
        ) from None


def _put_in_place(staging: Path, out: Path) -> None:
    """Rename the finished `staging` folder to `out`, moving what was there (an empty folder or an earlier export)
    aside first and removing it after."""
    if not out.exists():
        staging.rename(out)
        return
    aside = _beside(out)
    out.rename(aside)
    staging.rename(out)
    shutil.rmtree(aside, ignore_errors=True)


def _beside(out: Path) -> Path:
    """A free hidden name next to `out`."""
    return out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
