"""Shared fixtures: tiny corpora and runs made inside the tests (no network, no files from outside the repository)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rnngen.cli.main import cli
from rnngen.data.preparing import prepare
from rnngen.data.reading import Corpus
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.training import threads

# The `browser` fixture of the page tests (headless Chromium).
pytest_plugins = ["browser"]

WORDS = (
    "the model reads a token and updates its hidden state before it predicts the next one while "
    "gradients flow back through time and vanish when the recurrent weights are small"
).split()
# Made-up words give the tokenizers enough distinct pieces to fill a few hundred ids.
WORDS += [
    a + b + c for a in ("ka", "lo", "mi", "sen", "tor") for b in ("ra", "vi", "nu", "pel") for c in ("", "s", "ed")
]


def sample_text(chars: int, seed: int = 0) -> str:
    """Deterministic pseudo-English: sentences of the words above, with newlines between paragraphs."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
        parts.append(sentence + ("\n" if rng.random() < 0.2 else " "))
        size += len(parts[-1])
    return "".join(parts)[:chars]


@pytest.fixture(autouse=True)
def cpu_unless_marked_cuda(request: pytest.FixtureRequest):
    """The suite asserts what a CPU run does (bit-for-bit resumes, the NumPy decoder against torch), so on a
    GPU machine every test but those marked `cuda` (tests/test_cuda.py) sees no GPU, nor do its subprocesses.
    Its own MonkeyPatch, so that a test's `monkeypatch.undo()` leaves the GPU hidden."""
    if request.node.get_closest_marker("cuda") is not None:
        yield
        return
    with pytest.MonkeyPatch.context() as hide:
        hide.setattr(torch.cuda, "is_available", lambda: False)
        hide.setattr(torch.cuda, "device_count", lambda: 0)
        hide.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


@pytest.fixture(autouse=True)
def idle_cores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Training in a test sees an idle machine, whatever else runs beside the suite: the free-core check
    (rnngen.training.threads) would otherwise add a notice and change thread counts with the machine's load.
    Tests marked `real_cores` read the machine."""
    if request.node.get_closest_marker("real_cores") is None:
        monkeypatch.setattr(threads, "busy_cores", lambda seconds=threads.SAMPLE_SECONDS: None)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(sample_text(30_000))
    return path


@pytest.fixture
def char_corpus(tmp_path: Path, text_file: Path) -> Corpus:
    prepared, _ = prepare(
        SourceSpec(dataset=str(text_file)), TokenizerSpec("char"), root=tmp_path / "corpora", name="notes"
    )
    return prepared


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke `rnngen` in a scratch folder; returns click's Result."""
    monkeypatch.setenv("RNNGEN_CORPORA", str(tmp_path / "corpora"))
    monkeypatch.setenv("RNNGEN_CHECKPOINTS", str(tmp_path / "checkpoints"))

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


TINY = ("--preset", "tiny", "--steps", "30", "--eval-every", "15", "--eval-tokens", "2000", "--plain")


@pytest.fixture
def trained(run_cli, text_file):
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli("train", "--corpus", "notes", *TINY, "--name", "notes-run")
    assert result.exit_code == 0, result.output
    return "notes-run"
