"""Run folders as `rnngen runs` and `--checkpoint` see them, and the JSON rnngen writes into them."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from types import SimpleNamespace

import pytest

from rnngen.config import PRESETS, ModelConfig, Preset, TrainConfig
from rnngen.errors import CheckpointError
from rnngen.store.resolve import resolve_checkpoint
from rnngen.store.runs import BEST, RunFolder
from rnngen.training import sizing


def strict(text: str):
    """`text` parsed as JSON.parse would: a bare NaN or Infinity fails the test."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))


def test_a_run_name_is_the_run_before_a_folder_here_of_that_name(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "checkpoints"
    (tmp_path / trained).mkdir()
    (tmp_path / trained / "notes.txt").write_text("someone else's folder")
    run, path = resolve_checkpoint(trained, runs)
    assert run.path == runs / trained and path == runs / trained / BEST
    listed = run_cli("runs", trained, "--json")
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["path"] == str(runs / trained)
    # Two runs of that name: the error names both, and a path picks either.
    shutil.copytree(runs / trained, tmp_path / trained, dirs_exist_ok=True)
    with pytest.raises(CheckpointError, match="names two runs") as refused:
        resolve_checkpoint(trained, runs)
    assert str(runs / trained) in str(refused.value) and str(tmp_path / trained) in str(refused.value)
    assert resolve_checkpoint(f"./{trained}", runs)[0].path.resolve() == tmp_path / trained
    assert resolve_checkpoint(str(runs / trained), runs)[0].path == runs / trained


def test_a_run_whose_config_json_was_deleted_is_listed_as_damaged(run_cli, trained, tmp_path):
    (tmp_path / "checkpoints" / trained / "config.json").unlink()
    (tmp_path / "checkpoints" / "notes").mkdir()  # a folder of someone else's under the runs' folder
    (tmp_path / "checkpoints" / "notes" / "todo.txt").write_text("not a run")
    result = run_cli("runs", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["run"] == trained and "config.json is missing" in row["damaged"] and "--resume" in row["damaged"]
    table = run_cli("runs")
    assert table.exit_code == 0 and "damaged" in table.output


def test_what_rnngen_writes_into_a_run_is_strict_json(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.write_config({"best_val_loss": math.inf, "sizing": {"excess_bpc": [math.inf, -math.inf, math.nan, 1.5]}})
    assert strict(run.config_path.read_text())["sizing"]["excess_bpc"] == [None, None, None, 1.5]
    run.append_metrics({"event": "eval", "step": 1, "val_loss": math.nan, "val_bpc": math.inf})
    run.append_metrics({"event": "eval", "step": 2, "val_loss": 1.0, "val_bpc": 1.4})
    run.truncate_metrics(2)
    rows = [strict(line) for line in run.metrics_path.read_text().splitlines()]
    assert rows[0]["val_loss"] is None and run.best_val_bpc() == 1.4  # readers skip a figure that is null


def test_a_run_whose_sizing_predicts_an_infinite_excess_writes_strict_json(run_cli, text_file, tmp_path, monkeypatch):
    train = dataclasses.replace(TrainConfig(), warmup=2, eval_tokens=2000, eval_every=10**6)
    monkeypatch.setitem(PRESETS, "cpu", Preset(ModelConfig(), train, sizes=((16, 4), (32, 4))))
    monkeypatch.setattr(sizing, "MIN_PROBED_BUDGET", 1.0)
    monkeypatch.setattr(sizing, "pace", lambda model, train, tokens: 20_000.0)
    # What the rule predicts of a shape that trains no tokens (a probe that ate the budget): infinitely far off.
    monkeypatch.setattr(sizing, "fit_for", lambda tokenizer: SimpleNamespace(excess=lambda *args: math.inf))
    assert run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes").exit_code == 0
    result = run_cli("train", "--corpus", "notes", "--preset", "cpu", "--time", "1", "--plain", "--name", "sized")
    assert result.exit_code == 0, result.output
    run = RunFolder(tmp_path / "checkpoints" / "sized")
    assert strict(run.config_path.read_text())["sizing"]["chosen"]["excess_bpc"] is None
    assert all(strict(line) for line in run.metrics_path.read_text().splitlines())
