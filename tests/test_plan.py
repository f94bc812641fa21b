"""The training library: `rnngen.train` and the rules it shares with the CLI (presets, overrides, resume, fine-tune)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import TINY, sample_text

import rnngen
from rnngen.config import PRESETS, TrainConfig
from rnngen.data.reading import same_data
from rnngen.errors import RnngenError
from rnngen.store.runs import RunFolder
from rnngen.training import trainer
from rnngen.training.events import Finished, Notice, Started
from rnngen.training.plan import (
    RESUMABLE,
    new_run_name,
    plan_fine_tune,
    plan_new,
    plan_resume,
    run_folder,
    train_config,
)

SMALL = {"steps": 6, "eval_every": 6, "eval_tokens": 2000, "batch_size": 4, "seq_len": 16, "samples": False}


def test_a_budget_given_alone_replaces_both_of_the_presets():
    cpu = PRESETS["cpu"].train
    assert (cpu.steps, cpu.time_budget) == (None, 180.0)
    assert (train_config(cpu, {"steps": 50}).steps, train_config(cpu, {"steps": 50}).time_budget) == (50, None)
    tiny = PRESETS["tiny"].train
    assert (train_config(tiny, {"time_budget": 9.0}).steps, train_config(tiny, {"time_budget": 9.0}).time_budget) == (
        None,
        9.0,
    )
    both = train_config(cpu, {"steps": 50, "time_budget": 9.0, "lr": 3e-3})
    assert (both.steps, both.time_budget, both.lr, both.batch_size) == (50, 9.0, 3e-3, cpu.batch_size)


def test_the_cpu_preset_is_the_configurations_defaults():
    assert PRESETS["cpu"].train == TrainConfig() and PRESETS["cpu"].model.hidden == 512


def test_a_new_run_takes_the_preset_the_overrides_and_the_corpus_vocabulary(char_corpus, tmp_path):
    plan = plan_new(char_corpus, PRESETS["tiny"], {"kind": "gru", "hidden": 48, "lr": 5e-3}, run_folder(tmp_path, "r"))
    assert (plan.model.kind, plan.model.hidden, plan.model.embed) == ("gru", 48, PRESETS["tiny"].model.embed)
    assert plan.model.vocab_size == char_corpus.vocab_size and plan.train.lr == 5e-3 and not plan.resuming
    with pytest.raises(RnngenError, match="unknown training option hiden"):
        plan_new(char_corpus, PRESETS["tiny"], {"hiden": 48}, run_folder(tmp_path, "r"))


def test_run_names_sort_by_time_and_are_checked(tmp_path):
    assert re.fullmatch(r"notes-gru-\d{8}-\d{6}", new_run_name("notes", "gru"))
    with pytest.raises(RnngenError, match="run name '../x' is not allowed"):
        run_folder(tmp_path, "../x")


def test_rnngen_train_trains_the_run_that_rnngen_train_trains(run_cli, char_corpus, tmp_path):
    assert run_cli("train", "--corpus", "notes", *TINY, "--name", "by-cli", "--no-samples").exit_code == 0
    events = []
    summary = rnngen.train(
        "notes",
        "tiny",
        name="by-call",
        steps=30,
        eval_every=15,
        eval_tokens=2000,
        samples=False,
        corpora=tmp_path / "corpora",
        checkpoints=tmp_path / "checkpoints",
        on_event=events.append,
    )
    assert isinstance(summary, Finished) and summary.steps == 30 and summary.best_val_bpc is not None
    cli_run, call_run = (RunFolder(tmp_path / "checkpoints" / name) for name in ("by-cli", "by-call"))
    assert {k: v for k, v in cli_run.config().items() if k != "corpus"} == {
        k: v for k, v in call_run.config().items() if k != "corpus"
    }
    assert [row["loss"] for row in cli_run.metrics() if row["event"] == "train"] == [
        row["loss"] for row in call_run.metrics() if row["event"] == "train"
    ]
    assert any(isinstance(event, Started) for event in events) and isinstance(events[-1], Finished)


def test_library_errors_name_parameters_and_the_cli_names_flags(run_cli, char_corpus, tmp_path):
    with pytest.raises(RnngenError, match=r"^time_budget must be positive"):
        rnngen.train("notes", corpora=tmp_path / "corpora", checkpoints=tmp_path / "checkpoints", time_budget=-1.0)
    result = run_cli("train", "--corpus", "notes", "--steps", "0", "--plain")
    assert result.exit_code != 0
    with pytest.raises(RnngenError, match=r"^steps must be at least 1"):
        rnngen.train("notes", corpora=tmp_path / "corpora", checkpoints=tmp_path / "checkpoints", steps=0)
    result = run_cli("train", "--corpus", "notes", "--lr", "inf", "--plain")
    assert "--lr must be a finite number" in result.output and "\x1f" not in result.output


def test_resume_may_change_the_budget_only(char_corpus, tmp_path):
    corpora, checkpoints = tmp_path / "corpora", tmp_path / "checkpoints"
    rnngen.train("notes", "tiny", name="r", corpora=corpora, checkpoints=checkpoints, **SMALL)
    plan = plan_resume("r", {"steps": 12, "patience": 3}, corpora, checkpoints)
    assert plan.resuming and plan.train.steps == 12 and plan.train.patience == 3 and plan.notice is None
    assert plan.model.hidden == PRESETS["tiny"].model.hidden
    with pytest.raises(RnngenError, match="resume keeps the run's model, data and optimizer settings; drop hidden, lr"):
        plan_resume("r", {"hidden": 8, "lr": 1.0, "steps": 12}, corpora, checkpoints)
    with pytest.raises(RnngenError, match="drop corpus"):
        plan_resume("r", {"steps": 12}, corpora, checkpoints, corpus_name="other")
    with pytest.raises(RnngenError, match="already spent its budget at step 6: pass a larger steps"):
        plan_resume("r", {}, corpora, checkpoints)
    assert {"steps", "time_budget", "device", "patience"} <= RESUMABLE and "lr" not in RESUMABLE


def test_resume_refuses_a_corpus_rebuilt_from_other_text(char_corpus, tmp_path, text_file):
    corpora, checkpoints = tmp_path / "corpora", tmp_path / "checkpoints"
    rnngen.train("notes", "tiny", name="r", corpora=corpora, checkpoints=checkpoints, **SMALL)
    # The same text again: the same tokens, so the run goes on.
    rnngen.prepare(str(text_file), tokenizer="char", name="notes", corpora=corpora, force=True)
    assert plan_resume("r", {"steps": 12}, corpora, checkpoints).resuming
    # Rebuilt from other text with the same tokenizer: the run's data is gone.
    other = tmp_path / "other.txt"
    other.write_text(sample_text(30_000, seed=1))
    rnngen.prepare(str(other), tokenizer_from="r", name="notes", corpora=corpora, checkpoints=checkpoints, force=True)
    with pytest.raises(RnngenError, match=r"^corpus notes was rebuilt since run r trained on it .*init_from r"):
        plan_resume("r", {"steps": 12}, corpora, checkpoints)


def test_a_run_recognises_its_corpus_by_the_fingerprint_of_its_tokens(char_corpus):
    identity = char_corpus.identity()
    assert same_data(identity, char_corpus) and identity["fingerprint"]
    assert not same_data({**identity, "fingerprint": "0" * 64}, char_corpus)


def test_the_best_figures_of_a_summary_are_one_evaluations(char_corpus, tmp_path, monkeypatch):
    # The lowest loss at step 3, the lowest bits per character at step 6 (say, after --eval-tokens changed).
    scripted = iter([(1.0, 2.0), (1.5, 1.0)])

    def score(*args, **kwargs):
        loss, bpc = next(scripted)
        return {"loss": loss, "ppl": 2.0, "bpc": bpc, "tokens": 100, "bounded": True}

    monkeypatch.setattr(trainer, "score", score)
    summary = rnngen.train(
        "notes",
        "tiny",
        name="r",
        corpora=tmp_path / "corpora",
        checkpoints=tmp_path / "checkpoints",
        **{**SMALL, "eval_every": 3},
    )
    assert (summary.best_val_loss, summary.best_val_bpc) == (1.0, 2.0)
    assert RunFolder(tmp_path / "checkpoints" / "r").best_val_bpc() == 2.0


def test_a_weights_only_resume_says_what_it_cannot_restore(char_corpus, tmp_path):
    corpora, checkpoints = tmp_path / "corpora", tmp_path / "checkpoints"
    rnngen.train("notes", "tiny", name="r", corpora=corpora, checkpoints=checkpoints, **SMALL)
    run = RunFolder(checkpoints / "r")
    run.file("last.safetensors").write_bytes(run.file("best.safetensors").read_bytes())
    events = []
    rnngen.train(resume="r", corpora=corpora, checkpoints=checkpoints, steps=12, on_event=events.append)
    assert isinstance(events[0], Notice) and "holds weights only" in events[0].text


def test_a_fine_tune_keeps_the_model_sizes_and_may_change_dropout(char_corpus, tmp_path):
    corpora, checkpoints = tmp_path / "corpora", tmp_path / "checkpoints"
    rnngen.train("notes", "tiny", name="base", corpora=corpora, checkpoints=checkpoints, hidden=40, **SMALL)
    plan = plan_fine_tune(
        "base", char_corpus, PRESETS["cpu"], {"dropout": 0.1, "steps": 3}, run_folder(checkpoints, "tuned"), checkpoints
    )
    assert (plan.model.hidden, plan.model.dropout, plan.train.steps) == (40, 0.1, 3)
    assert plan.init_from == checkpoints / "base" / "best.safetensors"
    with pytest.raises(RnngenError, match="init_from takes the model's sizes from base; drop hidden"):
        plan_fine_tune("base", char_corpus, PRESETS["cpu"], {"hidden": 8}, run_folder(checkpoints, "t"), checkpoints)
    summary = rnngen.train("notes", init_from="base", name="tuned", corpora=corpora, checkpoints=checkpoints, **SMALL)
    assert json.loads((checkpoints / "tuned" / "config.json").read_text())["model"]["hidden"] == 40
    assert summary.steps == 6


def test_resume_refuses_a_hub_model_and_names_init_from(run_cli):
    result = run_cli("train", "--resume", "hf:alice/notes-gru", "--steps", "5")
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "--resume continues a run of this machine; a hub model is fine-tuned with --init-from hf:alice/notes-gru"
    )


def test_a_new_run_that_fails_before_its_first_save_leaves_no_folder(char_corpus, tmp_path, monkeypatch):
    from rnngen.training import session

    def fails(*args, **kwargs):
        raise RnngenError("out of memory")

    monkeypatch.setattr(session, "fit", fails)
    with pytest.raises(RnngenError, match="out of memory"):
        rnngen.train("notes", "tiny", name="r", corpora=tmp_path / "corpora", checkpoints=tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints" / "r").exists()


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"lr": None}, "lr must be a number, got None (NoneType)"),
        ({"batch_size": "8"}, "batch_size must be a whole number, got '8' (str)"),
        ({"hidden": True}, "hidden must be a whole number, got True (bool)"),
        ({"seed": "x"}, "seed must be a whole number, got 'x' (str)"),
        ({"steps": "20"}, "steps must be a whole number, got '20' (str)"),
        ({"steps": 20.5}, "steps must be a whole number, got 20.5 (float)"),
        ({"warmup": -3}, "warmup must be >= 0, got -3"),
    ],
)
def test_the_configuration_checks_the_types_python_callers_pass(char_corpus, tmp_path, keywords, message):
    with pytest.raises(RnngenError) as caught:
        rnngen.train("notes", "tiny", corpora=tmp_path / "corpora", checkpoints=tmp_path / "runs", **keywords)
    assert str(caught.value) == message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
