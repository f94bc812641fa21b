"""Run rnngen's benchmarks, print a table and write JSON.

python -m benchmarks --text input.txt   # all but quality/firstrun/sweep; tiny shakespeare for prepare and memory
python -m benchmarks --quick            # small sizes, a minute or two
python -m benchmarks train generate     # some of them
python -m benchmarks busy_cpu           # training speed with one core taken by another process
python -m benchmarks scan               # minGRU's parallel scan against loops and the fused GRU
python -m benchmarks quality            # 180 s runs on tiny shakespeare (--models lstm,mingru,...)
python -m benchmarks firstrun           # the plain loop against the cpu preset at equal time, then
                                        # `rnngen train` + 20 completions scored for English
python -m benchmarks firstrun --parts a --budgets 0.5M,1M,2M,4M,8M   # at equal tokens, per budget
python -m benchmarks firstrun --parts a --clock 60,180,600            # at equal wall time, per budget
python -m benchmarks sizing             # the runs the time-budget sizing rule is fitted on (--fit FILE: the fit)
python -m benchmarks sizing --only shakespeare-char,384x32 --budgets 2M,8M   # some of those runs
python -m benchmarks precision --text input.txt --budgets 2M --only 384x32   # bf16 against float32: speed, bits/char
python -m benchmarks sweep --steps 300  # one change at a time around the cpu preset (--grid FILE)
python -m benchmarks sweep --preset gpu # the same around the gpu preset, on a GPU machine
python -m benchmarks serve              # `rnngen serve` under 1, 16 and 64 streaming clients (--clients, --tokens)
python -m benchmarks prepare_speed --size 100M,500M,2G   # prepare of generated single-file texts vs bare sentencepiece
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from benchmarks import common

ALL = (
    "train",
    "busy_cpu",
    "generate",
    "cold_start",
    "prepare",
    "memory",
    "scan",
    "quality",
    "firstrun",
    "sweep",
    "serve",
    "prepare_speed",
    "sizing",
    "precision",
)
# Long runs (minutes each) that run only when named.
NAMED_ONLY = ("quality", "firstrun", "sweep", "serve", "prepare_speed", "sizing", "precision")


def _token_budgets(value: str | None) -> list[int] | None:
    """--budgets as token counts; a usage error when one is not a count such as 0.5M, 500k or 2000000."""
    if not value:
        return None
    from benchmarks.firstrun import token_count

    try:
        counts = [token_count(budget) for budget in value.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{value!r}: give token counts, comma-separated, such as 0.5M,1M,2000000")
    return counts


@click.command()
@click.argument("names", nargs=-1, type=click.Choice(ALL))
@click.option("--quick", is_flag=True, help="Small sizes: a smoke run, not figures to quote.")
@click.option(
    "--text",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RNNGEN_BENCH_TEXT",
    show_envvar=True,
    help="The text for the prepare, memory, quality, firstrun and sweep benchmarks: tiny shakespeare's "
    "input.txt (`pydocs` sweeps the embedded corpus).",
)
@click.option(
    "--seconds",
    type=float,
    default=180.0,
    show_default=True,
    help="Training budget of the quality, firstrun and sweep runs.",
)
@click.option(
    "--steps",
    type=int,
    help="sweep: train every point this many steps instead of --seconds "
    "(equal tokens on a machine shared with other work).",
)
@click.option(
    "--grid",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="sweep: a JSON list of points (default: one change at a time around the --preset).",
)
@click.option(
    "--only",
    help="sweep: run only these points of the grid, comma-separated names; sizing: only these corpora and shapes "
    "(e.g. shakespeare-char,384x32); precision: only these shapes.",
)
@click.option(
    "--preset",
    type=click.Choice(["cpu", "gpu"]),
    default="cpu",
    show_default=True,
    help="sweep: the preset every point starts from (gpu: re-tune the gpu preset on a GPU).",
)
@click.option(
    "--tokenizers",
    default="char,unigram",
    show_default=True,
    help="firstrun: the tokenizers of the equal-time comparison; sweep: the first is the default.",
)
@click.option(
    "--budgets",
    callback=lambda _ctx, _param, value: _token_budgets(value),
    help="firstrun: compare at equal tokens, at each of these budgets (e.g. 0.5M,1M,2M,4M,8M), instead of "
    "at equal --seconds; sizing: train each candidate at these budgets (default 1M,4M); precision: train each "
    "shape in both precisions at these budgets (default: speed only).",
)
@click.option(
    "--parts",
    default="ab",
    show_default=True,
    help="firstrun: a = plain loop vs cpu preset at equal time, b = `rnngen train` + completions.",
)
@click.option(
    "--models",
    default="lstm",
    show_default=True,
    help="Models of the quality runs, comma-separated (char tokenizer for each; unigram for lstm).",
)
@click.option(
    "--clients",
    help="serve: the numbers of concurrent streaming clients, comma-separated (default: those the targets name).",
)
@click.option("--tokens", type=int, help="serve: max_tokens of each streamed request (default: serve.TOKENS).")
@click.option(
    "--conversation",
    is_flag=True,
    help="serve: measure the state cache instead, with `rnngen serve` over the latest run: a 20-turn chat, questions "
    "about one document, the cache at its bound, NumPy's threads.",
)
@click.option(
    "--clock",
    help="firstrun: compare at equal wall time at each of these budgets in seconds, comma-separated (e.g. "
    "60,180,600; default: --seconds).",
)
@click.option(
    "--fit",
    "fit_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="sizing: fit the rule to the runs of this JSON-lines file (e.g. benchmarks/sizing_runs.jsonl) instead of "
    "training.",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="sizing: draw the fitted curves here.")
@click.option(
    "--size",
    default="100M,500M,2G",
    show_default=True,
    help="prepare_speed: the sizes of the generated texts in bytes, comma-separated (generated in a temporary folder).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Where the JSON results and the corpora they use go.",
)
def main(
    names: tuple[str, ...],
    quick: bool,
    text: Path,
    seconds: float,
    steps: int | None,
    grid: Path | None,
    only: str | None,
    preset: str,
    tokenizers: str,
    budgets: list[int] | None,
    parts: str,
    models: str,
    clients: str | None,
    tokens: int | None,
    conversation: bool,
    clock: str | None,
    fit_file: Path | None,
    plot: Path | None,
    size: str,
    out: Path,
) -> None:
    """Measure rnngen against bare PyTorch and sentencepiece loops in the same run."""
    names = names or tuple(name for name in ALL if name not in NAMED_ONLY)
    if (
        ({"prepare", "memory", "quality", "firstrun", "sweep", "precision"} | (set() if fit_file else {"sizing"}))
        & set(names)
        and str(text) != "pydocs"
        and (text is None or not text.is_file())
    ):
        raise click.BadParameter(
            f"{text or 'no file given'}: pass the path of tiny shakespeare's input.txt ({common.SHAKESPEARE_URL})",
            param_hint="--text",
        )
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    pydocs = common.prepared(out / "corpora", "pydocs", "unigram", None, "pydocs")
    rows: list[dict] = []
    result = {
        "machine": common.machine(),
        "quick": quick,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": rows,
    }
    path = out / f"bench-{'-'.join(names)}-{time.strftime('%Y%m%d-%H%M%S')}.json"

    def save() -> None:
        path.write_text(json.dumps(result, indent=2))

    def keep(row: dict) -> None:
        rows.append(row)
        save()

    for name in names:
        console.print(f"[bold]{name}[/] ...")
        if name == "train":
            from benchmarks import train_speed

            rows += train_speed.run(pydocs, quick)
        elif name == "busy_cpu":
            from benchmarks import busy_cpu

            rows += busy_cpu.run(pydocs, quick)
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
        elif name == "firstrun":
            from benchmarks import firstrun

            rows += firstrun.run(
                text,
                out / "corpora",
                20.0 if quick else seconds,
                tokenizers.split(","),
                parts,
                budgets,
                [float(seconds) for seconds in clock.split(",")] if clock else None,
            )
        elif name == "sweep":
            from benchmarks import sweep

            # A sweep runs for hours: each point is saved as it ends.
            sweep.run(
                text,
                out / "corpora",
                None if steps else seconds,
                steps,
                grid,
                tokenizers.split(",")[0],
                only.split(",") if only else None,
                preset,
                on_point=keep,
            )
        elif name == "serve":
            from benchmarks import serve

            if conversation:
                rows += serve.conversation(quick)
            else:
                counts = [int(count) for count in clients.split(",")] if clients else None
                rows += serve.run(pydocs, quick, counts, tokens)
        elif name == "prepare_speed":
            from benchmarks import prepare_speed

            rows += prepare_speed.run_sizes(size.split(","))
        elif name == "sizing":
            from benchmarks import sizing

            rows += (
                sizing.fit_file(fit_file, plot)
                if fit_file
                else sizing.run(
                    text,
                    out / "corpora",
                    out / "sizing.jsonl",
                    budgets,
                    only.split(",") if only else None,
                )
            )
        elif name == "precision":
            from benchmarks import precision

            rows += precision.run(text, out / "corpora", budgets, only.split(",") if only else None)
        # Written after each benchmark, so that a run stopped part-way keeps what it measured.
        save()
    machine = result["machine"]
    table = Table(
        title=f"rnngen benchmarks ({machine.get('gpu') or machine.get('cpu_model', '?')})", title_justify="left"
    )
    for column in ("benchmark", "figures", "pass"):
        table.add_column(column)
    for row in rows:
        figures = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row.items()
            if k not in ("benchmark", "pass", "samples", "model", "train")
        )
        table.add_row(row["benchmark"], figures, str(row.get("pass")))
    console.print(table)
    console.print(f"written {path}")


main()
