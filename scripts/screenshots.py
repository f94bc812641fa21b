"""Regenerate the pictures in docs/: the terminal ones with rich's own SVG export, the page of `rnngen serve` with
headless Chromium.

    python scripts/screenshots.py --checkpoint checkpoints/RUN
    python scripts/screenshots.py --checkpoint checkpoints/RUN --part serve --prompt "ROMEO:"

Each terminal picture is the real output of rnngen's rendering code for the given run, recorded by a rich
Console; the page is served over the run and completes the prompt in a real browser (Debian's `chromium` and
`chromium-driver`, and selenium). Rerun this after changing the display so that the README shows what users see.
"""

from __future__ import annotations

import os
import shutil
import threading
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
PAGE_SIZE = (1000, 800)


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
@click.option(
    "--part",
    "parts",
    type=click.Choice(["terminal", "serve"]),
    multiple=True,
    default=["terminal", "serve"],
    show_default=True,
    help="Which pictures: the terminal's SVGs, or the page of `rnngen serve` (needs chromium).",
)
def main(checkpoint: str, prompt: str, parts: tuple[str, ...]) -> None:
    """Write docs/complete-*.svg and docs/chat.svg (terminal), docs/serve-page.png (serve)."""
    DOCS.mkdir(exist_ok=True)
    if "terminal" in parts:
        terminal(checkpoint, prompt)
    if "serve" in parts:
        serve_page(checkpoint, prompt, DOCS / "serve-page.png")
        click.echo(f"wrote serve-page.png in {DOCS}")


def terminal(checkpoint: str, prompt: str) -> None:
    """The terminal pictures: `rnngen complete` three ways and a `rnngen chat` session."""
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


def serve_page(checkpoint: str, prompt: str, out: Path) -> None:
    """Serve `checkpoint` on a free loopback port, complete `prompt` on its page in headless Chromium, hover an
    unlikely token so that its alternatives show, and save the window as a PNG."""
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from rnngen.server import serving

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        raise click.ClickException("the page's picture needs a browser: apt-get install chromium chromium-driver")
    models = serving.load_models([checkpoint], Path("checkpoints"), "cpu")
    sock = serving.bind("127.0.0.1", 0)
    # A daemon thread: the server ends with this script.
    threading.Thread(target=serving.serve, args=(models, sock), daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.add_argument("--headless=new")
    if os.geteuid() == 0:  # Chromium refuses to run as root inside its sandbox
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    try:
        window(driver, *PAGE_SIZE)
        driver.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
        status = driver.find_element(By.ID, "status")
        WebDriverWait(driver, 30).until(lambda d: status.text.startswith("serving "))
        for field, value in {"prompt": prompt, "seed": 3, "max_tokens": 300}.items():
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(str(value))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 120).until(lambda d: "finished" in status.text or d.find_elements(By.CLASS_NAME, "error"))
        if "finished" not in status.text:
            raise click.ClickException(f"the page says: {status.text}")
        # As tall as the page grew with the completion: the whole page, without a scroll bar.
        window(driver, PAGE_SIZE[0], max(PAGE_SIZE[1], driver.execute_script("return document.body.scrollHeight")))
        # The least likely of the first tokens: high on the page, so the tooltip below it stays in the picture.
        first = driver.find_elements(By.CSS_SELECTOR, "#output .tok")[:60]
        ActionChains(driver).move_to_element(
            min(first, key=lambda span: float(span.get_attribute("data-prob")))
        ).perform()
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "tip").is_displayed())
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def window(driver, width: int, height: int) -> None:
    """Size the browser's viewport (what a screenshot holds) to width x height CSS pixels."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


if __name__ == "__main__":
    main()
