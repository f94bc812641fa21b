"""The command line as a user meets it: the README's first run, tables, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import TINY

from rnngen.cli.main import cli


def test_readme_first_run_trains_on_the_embedded_corpus_and_completes(run_cli, tmp_path):
    # `rnngen train` with no corpus prepares the embedded pydocs corpus itself (no network).
    result = run_cli("train", *TINY, "--name", "first")
    assert result.exit_code == 0, result.output
    assert "preparing the embedded corpus pydocs" in result.output
    meta = json.loads((tmp_path / "corpora" / "pydocs" / "meta.json").read_text())
    assert meta["splits"]["train"]["characters"] > 1_000_000 and "torch" in meta["source"]["packages"]
    result = run_cli("complete", "Studying Deep Learning is really", "--max-tokens", "20", "--seed", "1")
    assert result.exit_code == 0 and result.output.strip()
    result = run_cli("runs")
    assert "first" in result.output and "pydocs" in result.output
    result = run_cli("corpora")
    assert "pydocs" in result.output and "unigram" in result.output


def test_model_options_override_the_preset(run_cli, trained, tmp_path):
    result = run_cli(
        "train",
        "--corpus",
        "notes",
        *TINY,
        "--model",
        "gru",
        "--layers",
        "2",
        "--hidden",
        "24",
        "--no-tie",
        "--impl",
        "scratch",
        "--steps",
        "4",
        "--name",
        "gru-scratch",
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "checkpoints" / "gru-scratch" / "config.json").read_text())
    assert config["model"] | {"vocab_size": 0} == {
        "kind": "gru",
        "vocab_size": 0,
        "embed": 64,
        "hidden": 24,
        "layers": 2,
        "dropout": 0.0,
        "tie": False,
        "impl": "scratch",
    }
    assert run_cli("complete", "the", "--checkpoint", "gru-scratch", "--max-tokens", "3").exit_code == 0


def test_complete_reads_prompts_from_stdin_and_writes_json(run_cli, trained):
    result = run_cli(
        "complete",
        "-",
        "--json",
        "--max-tokens",
        "5",
        "--seed",
        "0",
        "--num-samples",
        "2",
        input="the model\ngradients\n",
    )
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["prompt"], r["sample"]) for r in rows] == [
        ("the model", 0),
        ("the model", 1),
        ("gradients", 0),
        ("gradients", 1),
    ]
    assert all(r["tokens"] <= 5 for r in rows)


def test_a_prompt_with_invalid_utf8_bytes_completes(run_cli, trained):
    # `rnngen complete $'abc\xff'`: Python hands the byte over as a lone surrogate, which sentencepiece refused.
    result = run_cli("complete", "the model \udcff", "--max-tokens", "5", "--seed", "0", "--plain")
    assert result.exit_code == 0 and result.output.strip()


def test_same_seed_same_completion(run_cli, trained):
    args = ("complete", "the", "--max-tokens", "30", "--seed", "4", "--temperature", "1.2", "--plain")
    assert run_cli(*args).output == run_cli(*args).output


def test_evaluate_reports_bits_per_character(run_cli, trained):
    result = run_cli("evaluate", "--checkpoint", trained, "--json")
    figures = json.loads(result.output)
    assert figures["corpus"] == "notes" and 0 < figures["val_bpc"] < 10 and not figures["bounded"]


def test_resume_continues_and_refuses_a_different_model(run_cli, trained, tmp_path):
    result = run_cli("train", "--resume", trained, "--hidden", "128")
    assert result.exit_code == 1 and "drop --hidden" in result.output
    result = run_cli("train", "--resume", trained)
    assert result.exit_code == 1 and "already spent its budget at step 30" in result.output
    result = run_cli("train", "--resume", trained, "--steps", "40", "--plain")
    assert result.exit_code == 0, result.output
    assert "resuming at step 30" in result.output and "│ steps            │ 40" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (("complete", "hi", "--top-p", "1.5"), "Invalid value for '--top-p'"),
        (("complete", "hi", "--max-tokens", "0"), "Invalid value for '--max-tokens'"),
        (("complete", "hi", "--temperature", "-1"), "Invalid value for '--temperature'"),
        (("complete", "hi", "--top-k", "-1"), "Invalid value for '--top-k'"),
        (("complete", "hi", "--checkpoint", "nowhere"), "no checkpoint or run folder at nowhere"),
        (("train", "--corpus", "nothing"), "no corpus named 'nothing'"),
        (("train", "--model", "transformer"), "Invalid value for '--model'"),
        (("train", "--resume", "nowhere"), "no checkpoint or run folder at nowhere"),
        (("complete",), "give a PROMPT"),
    ],
)
def test_bad_input_gets_one_line_naming_the_fix(run_cli, trained, args, message):
    result = run_cli(*args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_corrupt_checkpoint_and_truncated_corpus_are_one_line_errors(run_cli, trained, tmp_path):
    best = tmp_path / "checkpoints" / trained / "best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    result = run_cli("complete", "hi", "--checkpoint", str(best))
    assert result.exit_code == 1 and "best.safetensors is truncated" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with open(tmp_path / "corpora" / "notes" / "train.bin", "r+b") as f:
        f.truncate(10)
    result = run_cli("train", "--corpus", "notes", *TINY)
    assert result.exit_code == 1 and "train.bin is 10 bytes" in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys; from rnngen.cli.main import cli; from click.testing import CliRunner; "
        "CliRunner().invoke(cli, ['--help']); CliRunner().invoke(cli, ['runs']); "
        "print('torch' in sys.modules, 'datasets' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


def test_complete_does_not_import_datasets(run_cli, trained, tmp_path):
    code = (
        "import sys; from rnngen.cli.main import cli; "
        f"cli(['--checkpoints-dir', {str(tmp_path / 'checkpoints')!r}, 'complete', 'the', '--max-tokens', '3'], "
        "standalone_mode=False); print('datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("False")


def test_a_folder_that_is_no_run_and_a_missing_tokenizer_name_the_fix(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    result = run_cli("complete", "the", "--checkpoint", "photos")
    assert result.exit_code == 1 and "photos is a folder but not a run (no config.json)" in result.output
    assert "first save" not in result.output
    (tmp_path / "checkpoints" / trained / "tokenizer.model").unlink()
    for command in (("complete", "the"), ("evaluate",)):
        result = run_cli(*command, "--checkpoint", trained)
        assert result.exit_code == 1 and "tokenizer.model is missing: copy" in result.output, result.output
        assert "No such file" not in result.output


def test_non_utf8_prompts_are_u_fffd_in_json_and_a_bad_stdin_line_spares_the_others(run_cli, trained):
    row = json.loads(run_cli("complete", "the \udcff", "--max-tokens", "3", "--json").output)
    assert row["prompt"] == "the \ufffd"
    result = CliRunner().invoke(
        cli, ["complete", "-", "--max-tokens", "3", "--json"], input=b"the model\n\xe6 latin-1\ngradients\n"
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["the model", "gradients"]
    assert result.exit_code == 1 and "line 2 of stdin is not UTF-8 text" in result.stderr


def test_a_closed_output_ends_every_command_quietly(trained):
    # As `rnngen ... | head -c 10` once head has read enough, the reader is gone here before the command writes:
    # tables, streamed completions, JSON and help all end with no message and 141, as a tool stopped by SIGPIPE.
    for args in (
        ["--help"],
        ["lab", "--help"],
        ["runs"],
        ["runs", "--json"],
        ["complete", "hi", "--max-tokens", "200", "--num-samples", "3"],
        ["complete", "hi", "--max-tokens", "200", "--json"],
    ):
        command = subprocess.Popen(
            [sys.executable, "-m", "rnngen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        command.stdout.close()
        _, errors = command.communicate(timeout=120)
        assert (command.returncode, errors.decode()) == (141, ""), args


def test_runs_json_carries_numbers_and_the_table_formats_them(run_cli, trained, tmp_path):
    rows = json.loads(run_cli("runs", "--json").output)
    assert [row["run"] for row in rows] == [trained]
    row = rows[0]
    assert isinstance(row["best"], float) and isinstance(row["last"], float) and isinstance(row["steps"], int)
    assert isinstance(row["tokens_per_s"], float) and isinstance(row["size_bytes"], int) and row["damaged"] is None
    assert f"{row['best']:.4f}" in run_cli("runs").output
    pytest.importorskip("matplotlib")
    compared = json.loads(run_cli("runs", "--compare", trained, "--json", "--out", str(tmp_path / "c.png")).output)
    assert isinstance(compared[0]["best"], float) and isinstance(compared[0]["seconds"], float)


def test_runs_keep_the_run_name_whole_on_an_80_column_terminal(run_cli, trained, tmp_path):
    import io
    import shutil

    from rich.console import Console

    from rnngen.cli.display import runs_table

    name = "pydocs-minlstm-20261127-101500"
    shutil.copytree(tmp_path / "checkpoints" / trained, tmp_path / "checkpoints" / name)
    rows = json.loads(run_cli("runs", "--json").output)
    shown = {}
    for width in (80, 50):
        console = Console(width=width, file=io.StringIO())
        console.print(runs_table(rows))
        shown[width] = console.file.getvalue()
        assert all(len(line) <= width for line in shown[width].splitlines())
        assert f"│ {name} │" in shown[width], shown[width]
    # The columns that fit keep their figures whole; those that do not are left out, and said to be.
    assert f" {rows[0]['best']:.4f} " in shown[80] and "left out for the terminal's width: updated" in shown[80]
