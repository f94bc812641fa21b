"""Regenerate the terminal pictures in docs/ with rich's own SVG export.

    python scripts/screenshots.py --checkpoint checkpoints/RUN

Each picture is the real output of rnngen's rendering code for the given run, recorded by a rich
Console; rerun this after changing the display so that the README shows what users see.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner
from rich.console import Console

from rnngen.cli import display
from rnngen.cli.chat import ChatSession
from rnngen.cli.main import cli
from rnngen.config import SampleConfig
from rnngen.generation.loading import load_completer

DOCS = Path(__file__).resolve().parents[1] / "docs"


def record(title: str, args: list[str], out: Path) -> None:
    """Run `rnngen ARGS` with a recording terminal console and save it as an SVG."""
    console = Console(record=True, force_terminal=True, width=100, highlight=False)
    display.out = console
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    console.save_svg(str(out), title=title)


@click.command()
@click.option("--checkpoint", required=True, help="The run whose completions are shown.")
@click.option("--prompt", default="The gradient of the loss", show_default=True)
def main(checkpoint: str, prompt: str) -> None:
    """Write docs/complete-*.svg and docs/chat.svg."""
    DOCS.mkdir(exist_ok=True)
    base = ["complete", prompt, "--checkpoint", checkpoint, "--seed", "3"]
    record(
        f'rnngen complete "{prompt}" --show-probs --top-alternatives 3',
        [*base, "--max-tokens", "14", "--show-probs", "--top-alternatives", "3"],
        DOCS / "complete-probs.svg",
    )
    record(
        f'rnngen complete "{prompt}" --num-samples 3',
        [*base, "--max-tokens", "40", "--num-samples", "3"],
        DOCS / "complete-samples.svg",
    )
    record(
        f'rnngen complete "{prompt}" --beam 3',
        [*base, "--max-tokens", "40", "--beam", "3"],
        DOCS / "complete-beams.svg",
    )

    console = Console(record=True, force_terminal=True, width=100, highlight=False)
    lines = iter([prompt, "/temperature 0.4", "/keep", "Returns", "The", "/reset", "/quit"])

    def typed(prompt_text: str) -> str:
        line = next(lines)
        console.print(f"[bold]{prompt_text}[/]{line}")
        return line

    completer = load_completer(checkpoint, Path("checkpoints")).completer
    ChatSession(completer, SampleConfig(max_tokens=40, seed=3), console, read=typed).run()
    console.save_svg(str(DOCS / "chat.svg"), title="rnngen chat")
    click.echo(f"wrote {', '.join(sorted(p.name for p in DOCS.glob('*.svg')))} in {DOCS}")


if __name__ == "__main__":
    main()
