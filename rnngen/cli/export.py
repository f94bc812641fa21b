"""`rnngen export`: a run's model as ONNX, or as a static page that completes prompts in the browser."""

from __future__ import annotations

from pathlib import Path

import click

from rnngen.cli.common import Paths, pass_paths
from rnngen.export.folder import FORMATS, QUANTIZATIONS  # no torch: `rnngen export --help` stays quick


@click.command()
@click.argument("run")
@click.option(
    "--format",
    "format_",
    type=click.Choice(FORMATS),
    default="onnx",
    show_default=True,
    help="onnx: model.onnx, tokenizer.model and model.json for any ONNX Runtime; web: the same with a page "
    "(index.html and its scripts) that completes prompts in the visitor's browser.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The folder to write; it may not exist yet, or be empty.",
)
@click.option(
    "--quantize",
    type=click.Choice(QUANTIZATIONS),
    help="Store the weights in int8 (ONNX Runtime's dynamic quantization): a smaller file, slightly other logits.",
)
@click.option("--force", is_flag=True, help="Replace an earlier export in --out.")
@pass_paths
def export(paths: Paths, run: str, format_: str, out: Path, quantize: str | None, force: bool) -> None:
    """Write RUN's model (a run name or folder, a .safetensors file or hf:USER/NAME) as ONNX to --out.

    The graph takes token ids [batch, time] and the state, and returns the logits and the new state: one graph
    reads a prompt and steps a token. It is checked against rnngen's own model before the folder is written. The
    web format installs ONNX Runtime Web and sentencepiece from npm once (needs npm); the folder then works
    offline, from any static host. See docs/export.md.

    \b
    rnngen export notes-lstm --out notes-onnx
    rnngen export notes-lstm --out notes-onnx --quantize int8 --force
    rnngen export notes-lstm --format web --out site
    python -m http.server -d site 8000                 # then open http://localhost:8000
    """
    from rnngen.cli.display import out as console
    from rnngen.export.folder import export as export_run

    exported = export_run(run, out, format_, quantize, force, paths.checkpoints)
    total = sum(exported.sizes.values())
    for name, size in exported.sizes.items():
        console.print(f"{size / 1e6:9.2f} MB  {name}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"wrote {len(exported.sizes)} files ({total / 1e6:.1f} MB) to {exported.folder}; its logits differ from "
        f"rnngen's by at most {exported.difference:.1g}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if format_ == "web":
        console.print(
            f"serve it from any static host, e.g. python -m http.server -d {exported.folder} 8000, and open "
            "http://localhost:8000",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
