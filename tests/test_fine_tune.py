"""Fine-tuning: `rnngen train --init-from RUN` starts a new run from a run's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, sample_text


def first_val_bpc(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(row["val_bpc"] for row in rows if row["event"] == "eval")


@pytest.fixture
def base_run(run_cli, tmp_path) -> str:
    """A tiny model trained for a while on one text."""
    base = tmp_path / "base.txt"
    base.write_text(sample_text(40_000, seed=0))
    assert run_cli("prepare", "--dataset", str(base), "--tokenizer", "char", "--name", "base", "--plain").exit_code == 0
    result = run_cli(
        "train",
        "--corpus",
        "base",
        "--preset",
        "tiny",
        "--steps",
        "150",
        "--eval-every",
        "150",
        "--eval-tokens",
        "2000",
        "--plain",
        "--name",
        "base-run",
    )
    assert result.exit_code == 0, result.output
    return "base-run"


def test_fine_tuning_beats_training_from_scratch_with_the_same_budget(run_cli, base_run, tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text(sample_text(20_000, seed=1))
    result = run_cli("prepare", "--dataset", str(mine), "--tokenizer-from", base_run, "--name", "mine", "--plain")
    assert result.exit_code == 0, result.output
    budget = ("--preset", "tiny", "--steps", "20", "--eval-every", "20", "--eval-tokens", "2000", "--plain")
    result = run_cli("train", "--corpus", "mine", "--init-from", base_run, "--lr", "3e-3", *budget, "--name", "tuned")
    assert result.exit_code == 0, result.output
    assert run_cli("train", "--corpus", "mine", *budget, "--name", "scratch").exit_code == 0
    runs = tmp_path / "checkpoints"
    assert first_val_bpc(runs / "tuned") < 0.8 * first_val_bpc(runs / "scratch")
    tuned = json.loads((runs / "tuned" / "config.json").read_text())
    base = json.loads((runs / base_run / "config.json").read_text())
    # A new run folder with the base run's model sizes and the training options given here.
    assert tuned["model"] == base["model"] and tuned["corpus"]["name"] == "mine" and tuned["train"]["lr"] == 3e-3
    assert (runs / base_run / "metrics.jsonl").read_text().count('"eval"') == 1  # the base run is untouched


def test_fine_tuning_refuses_another_tokenizer_and_other_sizes(run_cli, base_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(sample_text(20_000, seed=2) + "ÆØÅ")
    assert (
        run_cli("prepare", "--dataset", str(other), "--tokenizer", "char", "--name", "other", "--plain").exit_code == 0
    )
    result = run_cli("train", "--corpus", "other", "--init-from", base_run, *TINY)
    assert result.exit_code == 1 and "--tokenizer-from base-run" in result.output
    best = tmp_path / "checkpoints" / base_run / "best.safetensors"
    result = run_cli("train", "--corpus", "other", "--init-from", str(best), *TINY)
    assert result.exit_code == 1 and f"--tokenizer-from {best.parent}" in result.output
    assert [run.name for run in (tmp_path / "checkpoints").iterdir()] == [base_run]  # no run folder was started
    result = run_cli("train", "--corpus", "base", "--init-from", base_run, "--hidden", "32", *TINY)
    assert result.exit_code == 1 and "drop --hidden" in result.output
    result = run_cli("train", "--corpus", "base", "--init-from", base_run, "--resume", base_run, *TINY)
    assert result.exit_code == 1 and "pick one" in result.output
    # Without --corpus: said at once, before the embedded corpus (another tokenizer) is built.
    result = run_cli("train", "--init-from", "nowhere", *TINY)
    assert result.exit_code == 1 and "no checkpoint or run folder at nowhere" in result.output
    result = run_cli("train", "--init-from", base_run, *TINY)
    assert result.exit_code == 1 and not (tmp_path / "corpora" / "pydocs").exists()
    assert result.output.strip() == (
        f"error: --init-from {base_run} fine-tunes on your text: prepare it with that model's tokenizer (rnngen "
        f"prepare --dataset YOUR_TEXTS --tokenizer-from {base_run}) and name it with --corpus"
    )
