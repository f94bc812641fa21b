"""`report_to`: TensorBoard and W&B receive the figures of metrics.jsonl, the samples and the configuration; a
resumed run continues one curve; a missing package is refused at once; a failing tracker never stops training."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest

import rnngen
from rnngen.errors import RnngenError
from rnngen.store.runs import RunFolder
from rnngen.training import trackers
from rnngen.training.events import Logged, Notice

TRAIN_TAGS = ["train/loss", "train/lr", "train/grad_norm", "train/clipped", "train/tokens_per_s", "train/epoch"]
EVAL_TAGS = ["val/loss", "val/bpc", "val/ppl"]
TINY = dict(preset="tiny", eval_every=10, log_every=5, eval_tokens=2_000)


def train(tmp_path: Path, corpus, name: str, **options):
    return rnngen.train(corpus, checkpoints=tmp_path / "checkpoints", name=name, **{**TINY, **options})


def rows(run: Path, event: str) -> list[dict]:
    return [row for row in RunFolder(run).metrics() if row["event"] == event]


def tensorboard_events(run: Path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def assert_curve(events, tag: str, expected: list[dict], key: str) -> None:
    """The scalar `tag` is the metrics rows' `key` at their steps (as float32)."""
    found = events.Scalars(tag)
    assert [e.step for e in found] == [row["step"] for row in expected]
    assert [e.value for e in found] == pytest.approx([row[key] for row in expected], rel=1e-6)


def test_report_to_names_none_one_or_several_trackers():
    assert trackers.parse_report_to(None) == trackers.parse_report_to("none") == ()
    assert trackers.parse_report_to("tensorboard, wandb,tensorboard") == ("tensorboard", "wandb")
    assert trackers.parse_report_to(["wandb"]) == ("wandb",)
    with pytest.raises(RnngenError, match="report_to.*'mlflow'"):
        trackers.parse_report_to("mlflow")
    assert trackers.parse_report_to("none, none") == ()
    for mixed in ("none,tensorboard", ["wandb", "none"]):
        with pytest.raises(RnngenError, match="report_to none turns every tracker off: give it alone"):
            trackers.parse_report_to(mixed)


def test_a_missing_package_is_refused_in_one_line_before_anything_runs(run_cli, char_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: find_spec finds nothing, import fails
    result = run_cli("train", "--preset", "tiny", "--report-to", "wandb")
    assert result.exit_code == 1
    assert result.output.strip() == 'error: --report-to wandb needs the wandb package: pip install "rnngen[wandb]"'
    with pytest.raises(RnngenError, match=r'report_to wandb needs the wandb package: pip install "rnngen\[wandb\]"'):
        rnngen.train(char_corpus, checkpoints=tmp_path / "checkpoints", report_to=["wandb"], **TINY)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "corpora" / "pydocs").exists()


def test_tensorboard_holds_every_figure_at_its_steps_the_samples_and_the_hyperparameters(char_corpus, tmp_path):
    pytest.importorskip("tensorboard")
    summary = train(tmp_path, char_corpus, "tb", steps=30, report_to="tensorboard", hidden=32)
    events = tensorboard_events(Path(summary.run))
    logged, evaluated = rows(summary.run, "train"), rows(summary.run, "eval")
    for tag in TRAIN_TAGS:
        assert_curve(events, tag, logged, tag.split("/")[1])
    for tag in EVAL_TAGS:
        assert_curve(events, tag, evaluated, "val_" + tag.split("/")[1])
    samples = events.Tensors("sample/text_summary")
    assert [s.step for s in samples] == [r["step"] for r in rows(summary.run, "sample")] == [10, 20, 30]
    last = rows(summary.run, "sample")[-1]
    assert samples[-1].tensor_proto.string_val[0].decode() == f"{last['prompt']}**{last['text']}**"
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"model.hidden" in hparams["_hparams_/session_start_info"]
    assert [e.value for e in events.Scalars("final/best_val_bpc")] == pytest.approx([summary.best_val_bpc])


def test_a_crashed_and_resumed_run_has_one_tensorboard_curve_without_repeated_steps(char_corpus, tmp_path):
    pytest.importorskip("tensorboard")

    def crash_after_step_25(event):  # the checkpoint of step 20 survives; steps 25 and 30 were already reported
        if isinstance(event, Logged) and event.step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, char_corpus, "crashed", steps=40, report_to="tensorboard", on_event=crash_after_step_25)
    run = tmp_path / "checkpoints" / "crashed"
    assert [e.step for e in tensorboard_events(run).Scalars("train/loss")] == [5, 10, 15, 20, 25]
    rnngen.train(resume=str(run), checkpoints=tmp_path / "checkpoints", report_to="tensorboard")
    events = tensorboard_events(run)
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40] == [r["step"] for r in rows(run, "train")]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in rows(run, "train")])
    assert [e.step for e in events.Scalars("val/bpc")] == [10, 20, 30, 40]


class Failing:
    """A tracker whose disk fills up at its first log line."""

    calls = closes = 0

    def start(self):
        pass

    def __call__(self, event):
        if isinstance(event, Logged):
            Failing.calls += 1
            raise OSError(28, "No space left on device")

    def close(self):
        Failing.closes += 1
        raise OSError(28, "No space left on device")  # closing a broken tracker fails too, silently


def test_a_tracker_failing_mid_run_is_reported_once_and_training_goes_on(char_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(trackers, "require", lambda names: None)
    monkeypatch.setattr(trackers, "make", lambda name, run, config: Failing())
    seen = []
    summary = train(tmp_path, char_corpus, "failing", steps=20, report_to="tensorboard", on_event=seen.append)
    notices = [event.text for event in seen if isinstance(event, Notice)]
    assert notices == ["tensorboard stopped reporting (OSError: [Errno 28] No space left on device); training goes on"]
    assert Failing.calls == Failing.closes == 1  # dropped at its first failure, closed once, never called again
    assert summary.steps == 20 and [r["step"] for r in rows(summary.run, "train")] == [5, 10, 15, 20]


def wandb_records(run_dir: Path) -> list:
    """The records of W&B's offline transaction log (`run-ID.wandb`), which wandb has no public reader for: a
    LevelDB-style log (32 KiB blocks of records with a 7-byte header) of `wandb_internal_pb2.Record` messages."""
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_holds_the_figures_and_a_resume_continues_the_same_run(char_corpus, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    summary = train(tmp_path, char_corpus, "wb", steps=20, report_to="wandb")
    run = Path(summary.run)
    run_id = (run / trackers.WANDB_ID_FILE).read_text().strip()
    rnngen.train(resume=str(run), steps=30, checkpoints=tmp_path / "checkpoints", report_to="wandb")
    assert (run / trackers.WANDB_ID_FILE).read_text().strip() == run_id
    history, summaries, configs = {}, {}, {}
    for folder in sorted((run / "wandb").glob(f"offline-run-*-{run_id}")):
        for record in wandb_records(folder):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                items = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
                }
                history.setdefault(items["_step"], {}).update(items)
            elif kind == "summary":
                summaries.update({item.key: json.loads(item.value_json) for item in record.summary.update})
            elif kind == "config":
                configs.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "run":
                assert record.run.run_id == run_id
                configs.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # one W&B run, written by two processes
    for row in rows(run, "train"):
        assert history[row["step"]]["train/loss"] == pytest.approx(row["loss"])
        assert history[row["step"]]["train/lr"] == pytest.approx(row["lr"])
    for row in rows(run, "eval"):
        assert history[row["step"]]["val/bpc"] == pytest.approx(row["val_bpc"])
    for row in rows(run, "sample"):
        assert history[row["step"]]["sample"] == row["prompt"] + row["text"]
    assert configs["model.hidden"] == 64 and configs["corpus"] == "notes"
    assert summaries["final/steps"] == 30


def test_the_command_line_reports_to_tensorboard_and_compares_runs(run_cli, char_corpus, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("RNNGEN_CORPORA", str(char_corpus.path.parent))
    for name, model in (("lstm", "lstm"), ("gru", "gru")):
        result = run_cli(
            "train", "--corpus", "notes", "--preset", "tiny", "--steps", "10", "--eval-every", "5",
            "--model", model, "--name", name, "--plain", "--report-to", "tensorboard",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert [e.step for e in tensorboard_events(tmp_path / "checkpoints" / "gru").Scalars("val/bpc")] == [5, 10]
    result = run_cli("runs", "--compare", "lstm", "gru", "--out", str(tmp_path / "both.png"))
    if importlib.util.find_spec("matplotlib") is None:  # the optional extra is not installed: refused before any work
        assert result.exit_code == 1 and "pip install 'rnngen[plot]'" in result.output
        assert "compared" not in result.output and not (tmp_path / "both.png").exists()
        return
    assert result.exit_code == 0, result.output
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"
    assert "compared" in result.output and "lstm" in result.output and "gru" in result.output
    assert "last" in result.output and "tokens/s" in result.output
    listed = json.loads(run_cli("runs", "--compare", "lstm", "gru", "--json", "--out", str(tmp_path / "b.png")).output)
    assert [row["run"] for row in listed] == ["lstm", "gru"] and all(row["last"] != "-" for row in listed)
    assert "name the runs to compare" in run_cli("runs", "--compare").output
