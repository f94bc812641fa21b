"""`rnngen complete --until-end`: a completion is one document; the default for corpora of one-line documents."""

from __future__ import annotations

import json
import random

from tests.conftest import WORDS


def test_a_lines_corpus_completes_one_new_line_per_sample(run_cli, tmp_path):
    rng = random.Random(0)
    names = tmp_path / "names.txt"
    names.write_text(
        "\n".join(rng.choice(WORDS[30:]).capitalize() + rng.choice(["", "a", "o"]) for _ in range(2000)) + "\n"
    )
    assert (
        run_cli(
            "prepare",
            "--dataset",
            str(names),
            "--documents",
            "lines",
            "--tokenizer",
            "char",
            "--name",
            "names",
            "--plain",
        ).exit_code
        == 0
    )
    result = run_cli(
        "train",
        "--corpus",
        "names",
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
        "names-run",
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "checkpoints" / "names-run" / "config.json").read_text())
    assert config["corpus"]["documents"] == "lines"
    result = run_cli("complete", "", "--num-samples", "20", "--seed", "1", "--plain")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # One line per sample; a model this small still ends a few right at their start.
    assert len(lines) == 20 and sum(bool(line) for line in lines) >= 15
    rows = [
        json.loads(line)
        for line in run_cli("complete", "", "--num-samples", "20", "--seed", "1", "--json").output.splitlines()
    ]
    assert [row["stop_reason"] for row in rows] == ["end_of_text"] * 20
    assert [row["completion"] for row in rows] == lines
    # A --max-tokens given still bounds each line.
    rows = [
        json.loads(line)
        for line in run_cli(
            "complete", "", "--max-tokens", "3", "--num-samples", "5", "--seed", "1", "--json"
        ).output.splitlines()
    ]
    assert all(row["tokens"] <= 3 for row in rows) and any(row["stop_reason"] == "max_tokens" for row in rows)


def test_until_end_lifts_the_token_bound_on_other_corpora(run_cli, trained):
    row = json.loads(run_cli("complete", "The", "--temperature", "0", "--json").output)
    assert row["tokens"] <= 200  # the default bound for a corpus of long documents
    row = json.loads(run_cli("complete", "The", "--until-end", "--temperature", "0", "--json").output)
    assert row["stop_reason"] == "end_of_text" or row["tokens"] == 2000  # the bound --until-end keeps
