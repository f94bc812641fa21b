"""--patience: a run stops once evaluations bring no lower validation loss, keeping the best, across --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY
from test_training import tiny

from rnngen.errors import RnngenError
from rnngen.models import checkpoint
from rnngen.store.runs import BEST, LAST, RunFolder
from rnngen.training.events import Logged
from rnngen.training.signals import Interrupted
from rnngen.training.trainer import Trainer

# A learning rate so small that AdamW's steps are below float32 resolution: the weights, hence the
# validation loss, stay bit-for-bit the same, a plateau from the first evaluation on.
FROZEN = {"lr": 1e-12, "eval_every": 5, "steps": 100, "samples": False}


def eval_steps(run: RunFolder) -> list[int]:
    return [row["step"] for row in run.metrics() if row["event"] == "eval"]


def test_patience_stops_a_run_that_stopped_learning_and_keeps_the_best(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "flat")
    summary = Trainer(char_corpus, *tiny(char_corpus, patience=3, **FROZEN), run).fit()
    # The first evaluation sets the best; three more without a lower loss end the run.
    assert eval_steps(run) == [5, 10, 15, 20] and summary["steps"] == 20
    assert summary["stopped"].startswith("stopped early at step 20: 3 evaluations without a lower validation loss")
    assert "--patience 3" in summary["stopped"] and str(run.file(BEST)) in summary["stopped"]
    assert checkpoint.load(run.file(BEST)).step == 5 and checkpoint.load(run.file(LAST)).step == 20


def test_without_patience_the_budget_decides(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "budget")
    summary = Trainer(char_corpus, *tiny(char_corpus, **{**FROZEN, "steps": 30}), run).fit()
    assert summary["steps"] == 30 and summary["stopped"] is None and len(eval_steps(run)) == 6


def test_a_resumed_run_keeps_its_count_of_evaluations_without_improvement(char_corpus, tmp_path):
    model_cfg, train_cfg = tiny(char_corpus, patience=3, **FROZEN)
    run = RunFolder(tmp_path / "runs" / "resumed")
    trainer = Trainer(char_corpus, model_cfg, train_cfg, run)

    def press_ctrl_c(event):
        if isinstance(event, Logged) and event.step == 12:  # after the evaluations at 5 (best) and 10 (1 without)
            trainer.stop.signal = 2

    trainer.on_event = press_ctrl_c
    with pytest.raises(Interrupted):
        trainer.fit()
    assert checkpoint.load(run.file(LAST)).resume_state["stale"] == 1
    summary = Trainer(char_corpus, model_cfg, train_cfg, run, resume_from=checkpoint.load(run.file(LAST))).fit()
    # 15 and 20 make three without a lower loss: the run stops where an unbroken one does, not at 25.
    assert summary["steps"] == 20 and eval_steps(run) == [5, 10, 15, 20]


def test_patience_from_the_command_line(run_cli, text_file, tmp_path):
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    frozen = ("--lr", "1e-12", "--steps", "100", "--eval-every", "5", "--no-samples")
    result = run_cli("train", "--corpus", "notes", *TINY, *frozen, "--patience", "2", "--name", "flat")
    assert result.exit_code == 0, result.output
    assert "stopped early at step 15: 2 evaluations without a lower validation loss (--patience 2)" in result.output
    run = RunFolder(tmp_path / "checkpoints" / "flat")
    assert json.loads(run.config_path.read_text())["train"]["patience"] == 2
    again = run_cli("train", "--resume", "flat", "--plain")
    assert again.exit_code == 1
    assert (
        "stopped at step 15 after 2 evaluations without a lower validation loss: pass a larger --patience"
        in " ".join(again.output.split())
    )
    longer = run_cli("train", "--resume", "flat", "--patience", "4", "--plain")
    assert longer.exit_code == 0, longer.output
    assert "stopped early at step 25: 4 evaluations" in longer.output
    off = run_cli("train", "--resume", "flat", "--patience", "0", "--steps", "35", "--plain")
    assert off.exit_code == 0, off.output
    assert "stopped early" not in off.output and eval_steps(run)[-1] == 35


def test_the_options_are_in_help_and_the_readme(run_cli):
    help_text = run_cli("train", "--help").output
    examples = [
        line
        for line in (Path(__file__).parents[1] / "README.md").read_text().splitlines()
        if line.startswith("rnngen train ")
    ]
    for option in ("--patience", "--sample-prompt", "--no-samples"):
        assert option in help_text and any(option in line for line in examples)


def test_the_library_takes_the_zero_its_messages_advise(char_corpus, tmp_path):
    import rnngen

    # 0 turns patience off and evaluates on the whole split, from Python as from the command line.
    summary = rnngen.train(
        "notes",
        "tiny",
        name="zeros",
        corpora=tmp_path / "corpora",
        checkpoints=tmp_path / "runs",
        patience=0,
        eval_tokens=0,
        **{**FROZEN, "steps": 20},
    )
    assert summary.steps == 20 and summary.stopped is None
    assert summary.last_eval is not None and not summary.last_eval.bounded
    with pytest.raises(RnngenError, match=r"patience must be >= 0 \(0 turns it off\), got -1"):
        rnngen.train("notes", "tiny", corpora=tmp_path / "corpora", checkpoints=tmp_path / "runs", patience=-1)
