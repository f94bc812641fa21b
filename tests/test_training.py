"""Training, checkpoints and resume: what a user relies on when a run stops, dies or diverges."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rnngen.config import ModelConfig, SampleConfig, TrainConfig
from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CheckpointError, TrainingDiverged
from rnngen.generation.completer import Completer
from rnngen.models import checkpoint
from rnngen.store.checkpoint_format import FORMAT
from rnngen.store.resolve import resolve_checkpoint
from rnngen.store.runs import BEST, LAST, RunFolder
from rnngen.training.events import Logged
from rnngen.training.signals import Interrupted
from rnngen.training.trainer import Trainer


def tiny(c, **train) -> tuple[ModelConfig, TrainConfig]:
    model = ModelConfig(
        kind=train.pop("kind", "lstm"),
        vocab_size=c.vocab_size,
        embed=32,
        hidden=32,
        layers=1,
        dropout=train.pop("dropout", 0.0),
    )
    settings = {
        "batch_size": 4,
        "seq_len": 16,
        "lr": 1e-2,
        "warmup": 2,
        "steps": 40,
        "time_budget": None,
        "eval_every": 20,
        "eval_tokens": 2000,
        "log_every": 1,
        **train,
    }
    return model, TrainConfig(**settings)


def losses(run: RunFolder) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in run.metrics() if row["event"] == "train"}


def test_loss_falls(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "a")
    summary = Trainer(
        char_corpus, *tiny(char_corpus, steps=200, batch_size=16, seq_len=32, lr=3e-2, eval_every=100), run
    ).fit()
    curve = losses(run)
    assert sum(curve[s] for s in range(191, 201)) / 10 < 0.6 * sum(curve[s] for s in range(1, 11)) / 10
    evals = [row["val_bpc"] for row in run.metrics() if row["event"] == "eval"]
    assert (
        evals[1] < evals[0] and summary["val_bpc"] == evals[1] and run.file(BEST).exists() and run.file(LAST).exists()
    )


def test_overfits_a_short_text_and_greedy_completion_reproduces_it(tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    c, _ = prepare(SourceSpec(dataset=str(text)), TokenizerSpec("char"), root=tmp_path / "corpora")
    model_cfg, train_cfg = tiny(c, steps=800, batch_size=16, seq_len=32, lr=3e-2, eval_every=800)
    run = RunFolder(tmp_path / "runs" / "fox")
    Trainer(c, model_cfg, train_cfg, run).fit()
    model, tok, _ = checkpoint.load_model(*resolve_checkpoint(str(run.path), tmp_path / "runs"))
    completer = Completer.for_module(model, tok)
    completion = completer.complete("the quick brown", SampleConfig(max_tokens=40, temperature=0))
    assert completion.text().startswith(" fox jumps over the lazy dog. the quick")


def test_checkpoint_round_trip_gives_the_same_model(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "rt")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=20), run)
    trainer.fit()
    model, tok, ckpt = checkpoint.load_model(run, run.file(LAST))
    ids = torch.tensor([char_corpus.tokenizer().encode("the model reads")])
    trainer.saved_model.eval()  # the weights' moving average (--ema), which the checkpoint holds as the model
    torch.testing.assert_close(model(ids)[0], trainer.saved_model(ids)[0], rtol=0, atol=0)
    assert ckpt.model == trainer.model_cfg and ckpt.training == trainer.cfg and ckpt.step == 20
    assert tok.sha256 == char_corpus.tokenizer().sha256


def test_stopped_and_resumed_run_matches_an_unbroken_one_exactly(char_corpus, tmp_path):
    model_cfg, train_cfg = tiny(char_corpus, steps=50, dropout=0.2, kind="gru")
    unbroken = RunFolder(tmp_path / "runs" / "unbroken")
    Trainer(char_corpus, model_cfg, train_cfg, unbroken).fit()

    stopped = RunFolder(tmp_path / "runs" / "stopped")
    trainer = Trainer(char_corpus, model_cfg, train_cfg, stopped)

    def press_ctrl_c(event):
        if isinstance(event, Logged) and event.step == 27:  # between two evaluations, mid-window of the schedule
            trainer.stop.signal = 2

    trainer.on_event = press_ctrl_c
    with pytest.raises(Interrupted, match="--resume") as stop:
        trainer.fit()
    assert stop.value.exit_code == 130
    resumed = Trainer(char_corpus, model_cfg, train_cfg, stopped, resume_from=checkpoint.load(stopped.file(LAST)))
    resumed.fit()
    # Same seed, same data position, same RNG and carried state: bit-for-bit the same losses on the CPU.
    assert losses(stopped) == losses(unbroken)
    # The weights' moving average went on from where it stopped: the same checkpoint.
    torch.testing.assert_close(
        checkpoint.load(stopped.file(LAST)).weights, checkpoint.load(unbroken.file(LAST)).weights, rtol=0, atol=0
    )


def test_the_checkpoint_holds_the_moving_average_of_the_training_weights(char_corpus, tmp_path):
    # With a step budget the run's length is known: a time constant of half the run is 6 of 12 steps.
    run = RunFolder(tmp_path / "runs" / "ema")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=12, ema=0.5, eval_every=100), run)
    average, decay = None, 1 - 1 / 6

    def follow(event):
        nonlocal average
        if isinstance(event, Logged):
            weights = checkpoint.model_weights(trainer.model)
            average = (
                {k: w.clone() for k, w in weights.items()}
                if average is None
                else {k: decay * average[k] + (1 - decay) * weights[k] for k in weights}
            )

    trainer.on_event = follow
    trainer.fit()
    saved = checkpoint.load(run.file(LAST))
    torch.testing.assert_close(saved.weights, average)
    torch.testing.assert_close(saved.resume_state["weights"], checkpoint.model_weights(trainer.model), rtol=0, atol=0)
    assert not torch.equal(saved.weights["embedding.weight"], saved.resume_state["weights"]["embedding.weight"])

    plain = RunFolder(tmp_path / "runs" / "no-ema")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=12, ema=0.0, eval_every=100), plain)
    trainer.fit()
    saved = checkpoint.load(plain.file(LAST))
    torch.testing.assert_close(saved.weights, checkpoint.model_weights(trainer.model), rtol=0, atol=0)
    assert "weights" not in saved.resume_state


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "nan")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=60), run)

    def poison(event):
        if isinstance(event, Logged) and event.step == 25:
            with torch.no_grad():
                trainer.model.head.bias.fill_(math.nan)

    trainer.on_event = poison
    with pytest.raises(TrainingDiverged, match=r"non-finite at step 26.*step 20.*lower lr"):
        trainer.fit()
    kept = checkpoint.load(run.file(LAST))
    assert kept.step == 20 and all(torch.isfinite(t).all() for t in kept.weights.values())


def test_a_failed_write_leaves_the_previous_checkpoint_whole(char_corpus, tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "runs" / "disk")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=20), run)
    trainer.fit()
    before = run.file(LAST).read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        trainer.save()
    monkeypatch.undo()
    assert run.file(LAST).read_bytes() == before
    assert checkpoint.load(run.file(LAST)).step == 20
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == []


def test_bad_checkpoint_files_get_errors_that_name_them(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "bad")
    Trainer(char_corpus, *tiny(char_corpus, steps=20), run).fit()
    data = run.file(LAST).read_bytes()
    truncated = run.path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors is truncated or not a safetensors file"):
        checkpoint.load(truncated)
    foreign = run.path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.safetensors is a safetensors file but not an rnngen checkpoint"):
        checkpoint.load(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(run.path / "missing.safetensors")
    other = tmp_path / "other.txt"
    other.write_text("completely different text with other letters: xyzzy QQQ 12345 " * 50)
    other_corpus, _ = prepare(
        SourceSpec(dataset=str(other)), TokenizerSpec("char"), root=tmp_path / "corpora", name="other"
    )
    run.tokenizer_path.write_bytes((other_corpus.path / "tokenizer.model").read_bytes())
    # The torch loader and the NumPy completer make the same check, with the same fix.
    for load in (checkpoint.load_model, Completer.from_checkpoint):
        with pytest.raises(CheckpointError, match="tokenizer.model does not match the checkpoint's tokenizer .*: copy"):
            load(run, run.file(LAST))


def test_a_checkpoint_of_another_format_is_refused_naming_its_format_and_the_fix(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "old")
    Trainer(char_corpus, *tiny(char_corpus, steps=20), run).fit()
    path = run.file(LAST)
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata()
    tensors, header = load_file(path), json.loads(metadata["rnngen"])
    for found, fix in ((FORMAT - 1, "train the run again with this rnngen"), (FORMAT + 1, "upgrade rnngen to read it")):
        save_file(tensors, path, metadata={**metadata, "rnngen": json.dumps({**header, "format": found})})
        with pytest.raises(CheckpointError) as refused:
            checkpoint.load(path)
        assert str(refused.value) == f"{path} is checkpoint format {found}; this rnngen reads format {FORMAT}: {fix}"
    # The run's config.json holds the same header: `rnngen runs` and the hub's model card read it.
    run.config_path.write_text(json.dumps({**header, "format": 1}))
    with pytest.raises(CheckpointError, match=f"config.json is checkpoint format 1; this rnngen reads format {FORMAT}"):
        run.config()


def test_a_tokenizer_mismatch_says_what_differs():
    from rnngen.store.runs import require_same_tokenizer

    with pytest.raises(CheckpointError, match=r"\(another tokenizer of the same size, 1024 pieces\): fix it"):
        require_same_tokenizer(
            "corpus c", {"sha256": "a", "vocab_size": 1024}, {"sha256": "b", "vocab_size": 1024}, "fix it"
        )
    with pytest.raises(CheckpointError, match=r"\(vocabulary 512 vs 1024\)"):
        require_same_tokenizer(
            "corpus c", {"sha256": "a", "vocab_size": 512}, {"sha256": "b", "vocab_size": 1024}, "fix it"
        )


def test_a_run_stopped_before_its_first_evaluation_resumes(char_corpus, tmp_path):
    from rnngen.training.signals import StopFlag

    model_cfg, train_cfg = tiny(char_corpus, steps=40, eval_every=30)
    run, stop = RunFolder(tmp_path / "runs" / "early"), StopFlag()
    stop.signal = signal.SIGTERM  # at the first log step, before any evaluation: no best loss yet
    with pytest.raises(Interrupted):
        Trainer(char_corpus, model_cfg, train_cfg, run, stop=stop).fit()
    resumed = Trainer(char_corpus, model_cfg, train_cfg, run, resume_from=checkpoint.load(run.file(LAST)))
    assert resumed.fit()["steps"] == 40
