"""Run rnngen's benchmarks, print a table and write JSON.

    python -m benchmarks                    # all but quality, full size
    python -m benchmarks --quick            # small sizes, a minute or two
    python -m benchmarks train generate     # some of them
    python -m benchmarks scan               # minGRU's parallel scan against loops and the fused GRU
    python -m benchmarks quality            # 180 s runs on tiny shakespeare (--models lstm,mingru,...)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from benchmarks import common

ALL = ("train", "generate", "cold_start", "prepare", "memory", "scan", "quality")


@click.command()
@click.argument("names", nargs=-1, type=click.Choice(ALL))
@click.option("--quick", is_flag=True, help="Small sizes: a smoke run, not figures to quote.")
@click.option("--text", type=click.Path(dir_okay=False, path_type=Path), default=common.SHAKESPEARE,
              show_default=True, help="The text for the prepare and quality benchmarks (tiny shakespeare).")
@click.option("--seconds", type=float, default=180.0, show_default=True, help="Training budget of the quality runs.")
@click.option("--models", default="lstm", show_default=True,
              help="Models of the quality runs, comma-separated (char tokenizer for each; unigram for lstm).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True,
              help="Where the JSON results and the corpora they use go.")
def main(names: tuple[str, ...], quick: bool, text: Path, seconds: float, models: str, out: Path) -> None:
    """Measure rnngen against bare PyTorch and sentencepiece loops in the same run."""
    names = names or tuple(name for name in ALL if name != "quality")
    if {"prepare", "memory", "quality"} & set(names) and not text.is_file():
        raise click.BadParameter(f"{text} does not exist: pass the tiny shakespeare input.txt", param_hint="--text")
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    pydocs = common.prepared(out / "corpora", "pydocs", "unigram", None, "pydocs")
    rows = []
    for name in names:
        console.print(f"[bold]{name}[/] ...")
        if name == "train":
            from benchmarks import train_speed
            rows += train_speed.run(pydocs, quick)
        elif name == "generate":
            from benchmarks import generation
            rows += generation.run(pydocs, quick)
        elif name == "cold_start":
            from benchmarks import cold_start
            rows += cold_start.run(pydocs, quick)
        elif name == "prepare":
            from benchmarks import prepare_speed
            rows += prepare_speed.run(str(text), "shakespeare", quick)
            if not quick:
                rows += prepare_speed.run("pydocs", "pydocs", quick)
        elif name == "memory":
            from benchmarks import memory
            rows += memory.run(text, out / "corpora")
        elif name == "scan":
            from benchmarks import scan_speed
            rows += scan_speed.run(quick)
        elif name == "quality":
            from benchmarks import quality
            rows += quality.run(text, out / "corpora", 20.0 if quick else seconds, models.split(","))
    result = {"machine": common.machine(), "quick": quick, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "results": rows}
    path = out / f"bench-{'-'.join(names)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    table = Table(title=f"rnngen benchmarks ({result['machine'].get('cpu_model', '?')})", title_justify="left")
    for column in ("benchmark", "figures", "pass"):
        table.add_column(column)
    for row in rows:
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                            if k not in ("benchmark", "pass"))
        table.add_row(row["benchmark"], figures, str(row.get("pass")))
    console.print(table)
    console.print(f"written {path}")


main()
