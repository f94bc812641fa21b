"""Samples while it learns: a completion of a fixed prompt at each evaluation, outside the budget."""

from __future__ import annotations

import json
import time

from conftest import TINY
from test_training import tiny

from rnngen.config import SampleConfig, TrainConfig
from rnngen.data.reading import Corpus
from rnngen.generation import samples
from rnngen.generation.completer import Completer
from rnngen.models import checkpoint
from rnngen.store.runs import LAST, RunFolder
from rnngen.training.plan import train_config
from rnngen.training.trainer import Trainer


def rows(run: RunFolder, event: str) -> list[dict]:
    return [row for row in run.metrics() if row["event"] == event]


def test_each_evaluation_records_a_sample_of_the_validation_opening(run_cli, text_file, tmp_path):
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli("train", "--corpus", "notes", *TINY, "--name", "watched")
    assert result.exit_code == 0, result.output
    run = RunFolder(tmp_path / "checkpoints" / "watched")
    drawn = rows(run, "sample")
    assert [row["step"] for row in drawn] == [row["step"] for row in rows(run, "eval")] == [15, 30]
    corpus = Corpus.find(tmp_path / "corpora", "notes")
    opening = corpus.tokenizer().decode(int(i) for i in corpus.tokens("val")[:200])
    prompt = drawn[0]["prompt"]
    # One text held out by characters starts mid-word: the prompt starts at the first whole word.
    assert len(prompt.split()) == 4 and f" {prompt}" in " ".join(opening.split())
    assert not " ".join(opening.split()).startswith(prompt)
    assert all(row["text"] for row in drawn)
    # --plain prints each sample as one line, and the summary shows the last one.
    lines = [line for line in result.output.splitlines() if "sample: " in line]
    assert [line.split("  sample: ")[0] for line in lines] == ["step 15", "step 30"]
    assert lines[1].endswith(f"[{prompt}]{drawn[1]['text']}".replace("\n", "\\n"))
    assert "last sample" in result.output


def test_the_sample_is_the_library_completion_of_the_checkpoint(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "same")
    summary = Trainer(
        char_corpus, *tiny(char_corpus, steps=20, sample_prompt="the model"), run, sampler=samples.Sampler
    ).fit()
    model, tok, ckpt = checkpoint.load_model(run, run.file(LAST))
    again = Completer.for_module(model, tok).complete("the model", samples.SAMPLE).text()
    assert summary["sample_prompt"] == "the model" and summary["sample"] == again == rows(run, "sample")[-1]["text"]
    assert samples.SAMPLE == SampleConfig(max_tokens=40, seed=0)


def test_no_samples_turns_them_off_and_a_resumed_run_keeps_the_choice(run_cli, text_file, tmp_path):
    assert (
        run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes", "--plain").exit_code
        == 0
    )
    result = run_cli("train", "--corpus", "notes", *TINY, "--no-samples", "--name", "quiet")
    assert result.exit_code == 0, result.output
    run = RunFolder(tmp_path / "checkpoints" / "quiet")
    assert (
        rows(run, "sample") == []
        and len(rows(run, "eval")) == 2
        and "sample: " not in result.output
        and "last sample" not in result.output
    )
    assert json.loads(run.config_path.read_text())["train"]["samples"] is False
    resumed = run_cli("train", "--resume", "quiet", "--steps", "45", "--plain")
    assert resumed.exit_code == 0, resumed.output
    assert rows(run, "sample") == []
    # The prompt and the switch may change on --resume, as --eval-every may.
    resumed = run_cli("train", "--resume", "quiet", "--steps", "60", "--samples", "--sample-prompt", "the", "--plain")
    assert resumed.exit_code == 0, resumed.output
    assert [(row["step"], row["prompt"]) for row in rows(run, "sample")] == [(60, "the")]
    # A prompt with a byte that is not UTF-8 and an escape sequence: kept as U+FFFD, shown as \x1b.
    hostile = "the\udcff\x1b[2J"
    resumed = run_cli("train", "--resume", "quiet", "--steps", "75", "--sample-prompt", hostile, "--plain")
    assert resumed.exit_code == 0, resumed.output
    assert rows(run, "sample")[-1]["prompt"] == "the\ufffd\x1b[2J"
    assert train_config(TrainConfig(), {"sample_prompt": hostile}).sample_prompt == "the\ufffd\x1b[2J"  # as stored
    assert "\x1b" not in resumed.output and "[the\ufffd\\x1b[2J]" in resumed.output


def test_a_terminal_is_shown_no_control_characters():
    from rnngen.cli.display import visible

    assert visible("a\x1b]0;title\x07b\x9b\udcffc\nd\te") == "a\\x1b]0;title\\x07b\\x9b\ufffdc\nd\te"
    assert visible("left\u202eright\u2028") == "left\\u202eright\\u2028"  # no reordering, no line break


def test_the_pydocs_corpus_samples_the_readme_prompt(char_corpus, monkeypatch):
    assert samples.default_prompt(char_corpus) != samples.PYDOCS_PROMPT
    monkeypatch.setitem(char_corpus.meta["source"], "dataset", "pydocs")
    assert samples.default_prompt(char_corpus) == samples.PYDOCS_PROMPT == "Studying Deep Learning is really"


def test_sampling_time_is_outside_the_training_budget(char_corpus, tmp_path, monkeypatch):
    # Each sample "takes" 1000 s on the clock the budget reads (a shifted perf_counter: no real wait).
    draw, clock, shift = samples.Sampler.__call__, time.perf_counter, [0.0]

    def slow(self, step):
        shift[0] += 1000.0
        return draw(self, step)

    monkeypatch.setattr(samples.Sampler, "__call__", slow)
    monkeypatch.setattr(time, "perf_counter", lambda: clock() + shift[0])
    run = RunFolder(tmp_path / "runs" / "slow")
    summary = Trainer(
        char_corpus, *tiny(char_corpus, steps=40, eval_every=10, time_budget=500.0), run, sampler=samples.Sampler
    ).fit()
    # Four samples, 4000 s, and none of it in the run's training seconds: the 500 s budget is not spent.
    assert shift[0] == 4000.0 and len(rows(run, "sample")) == 4
    assert summary["steps"] == 40 and summary["seconds"] < 500
    assert all(row["seconds"] < 500 for row in rows(run, "train"))
