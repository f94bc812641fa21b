"""The documentation: a short README that links every page, links that resolve, every option described, and the
lecture's equations cited by the functions that compute them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(page: Path) -> list[str]:
    """The targets of the markdown links of `page`, outside code blocks."""
    return LINK.findall(FENCE.sub("", page.read_text()))


def linked_pages() -> list[Path]:
    """The docs pages the README links to."""
    targets = {(ROOT / target.split("#")[0]).resolve() for target in links(README) if not target.startswith("http")}
    return sorted(page for page in DOCS.glob("*.md") if page.resolve() in targets)


def documentation() -> str:
    """The README and every docs page it links to: what a reader finds from the README."""
    return "\n".join(page.read_text() for page in [README, *linked_pages()])


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in FENCE.sub("", page.read_text()).splitlines() if line.startswith("#")}


def test_the_readme_is_a_short_guide():
    assert len(README.read_text().splitlines()) <= 300


def test_the_readme_links_every_docs_page():
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "no docs pages"
    assert [page.name for page in pages if page not in linked_pages()] == []


def test_the_readme_keeps_the_install_commands():
    readme = README.read_text()
    assert 'pip install -e . && rnngen train && rnngen complete "Studying Deep Learning is really"' in readme
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    assert 'pip install -e ".[test]" && python -m pytest' in (ROOT / ".ci" / "run").read_text()


def test_the_readme_shows_the_python_api():
    readme = README.read_text()
    for call in ("rnngen.prepare(", "rnngen.train(", "rnngen.load(", "model.complete(", "model.score(", "RnngenError"):
        assert call in readme, call


@pytest.mark.parametrize(
    "page",
    [README, *sorted(DOCS.glob("*.md")), ROOT / "corpora" / "README.md", ROOT / "checkpoints" / "README.md"],
    ids=lambda page: str(page.relative_to(ROOT)),
)
def test_links_resolve(page):
    for target in links(page):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: {target} names no heading of {file.name}"


def command_options() -> list[tuple[str, str]]:
    from rnngen.cli.main import COMMANDS, cli

    context = click.Context(cli)
    options = [("rnngen", opt) for param in cli.params for opt in (*param.opts, *param.secondary_opts)]
    for name in COMMANDS:
        command = cli.get_command(context, name)
        options += [
            (name, opt)
            for param in command.params
            if isinstance(param, click.Option)
            for opt in (*param.opts, *param.secondary_opts)
        ]
    return [(command, opt) for command, opt in options if opt.startswith("--")]


def test_every_option_is_documented():
    text = documentation()
    missing = [
        f"{command} {opt}" for command, opt in command_options() if not re.search(re.escape(opt) + r"(?![\w-])", text)
    ]
    assert missing == []


# (module, function or Class.method cited in the docs, text the function's source must hold)
REFERENCES = [
    ("rnngen/models/scratch.py", "rnn_cell", "torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)"),
    ("rnngen/models/recurrent.py", "RecurrentLM.logits", "self.head(hidden)"),
    ("rnngen/models/scratch.py", "lstm_cell", "i_t = torch.sigmoid"),
    ("rnngen/models/scratch.py", "lstm_cell", "f_t = torch.sigmoid"),
    ("rnngen/models/scratch.py", "lstm_cell", "o_t = torch.sigmoid"),
    ("rnngen/models/scratch.py", "lstm_cell", "c_cand = torch.tanh"),
    ("rnngen/models/scratch.py", "lstm_cell", "c_t = f_t * c + i_t * c_cand"),
    ("rnngen/models/scratch.py", "lstm_cell", "h_t = o_t * torch.tanh(c_t)"),
    ("rnngen/models/scratch.py", "gru_cell_cho", "r_t = torch.sigmoid"),
    ("rnngen/models/scratch.py", "gru_cell_cho", "(r_t * h) @ w_hn.T"),  # reset before the product
    ("rnngen/models/scratch.py", "gru_cell_cho", "(1 - z_t) * h + z_t * h_cand"),  # the lecture's direction
    ("rnngen/training/evaluate.py", "next_token_loss", "F.cross_entropy"),
    ("rnngen/training/trainer.py", "train_step", "next_token_loss"),
    ("rnngen/training/trainer.py", "train_step", "loss.backward()"),
    ("rnngen/training/trainer.py", "train_step", "clip_grad_norm_"),
    ("rnngen/training/trainer.py", "train_step", "detach_state"),
    ("rnngen/analysis/gradients.py", "profile", "F.cross_entropy(model.logits(last), target).backward()"),
    ("rnngen/analysis/gradients.py", "profile", "last.backward(probe)"),
    ("rnngen/analysis/gradients.py", "profile", "matrix_norm"),
    ("rnngen/analysis/gradients.py", "profile", "1 - hidden.square()"),
    ("rnngen/models/minimal.py", "parallel_scan_log", "logcumsumexp"),
]


def source_of(path: str, symbol: str) -> str:
    """The source of function `symbol` (`name` or `Class.method`) in the module at `path`, found with ast."""
    source = (ROOT / path).read_text()
    scope: list[ast.stmt] = ast.parse(source).body
    node = None
    for name in symbol.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name), None)
        assert node is not None, f"{path} has no {symbol}"
        scope = node.body
    return ast.get_source_segment(source, node)


@pytest.mark.parametrize("path,symbol,text", REFERENCES)
def test_the_docs_cite_the_function_that_computes_each_equation(path, symbol, text):
    assert f"`{path}::{symbol}`" in documentation(), f"the docs no longer cite {path}::{symbol}"
    assert text in source_of(path, symbol)
