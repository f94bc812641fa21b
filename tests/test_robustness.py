"""Run folders under pressure: two runs at once, runs that fail early, damaged or hostile files, bad numbers.

Each test reproduces what a user hit (issue #17) and checks what they see now: one line naming the
fix, and a run folder that can still be resumed or started again.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import tiny

from rnngen.errors import CheckpointError, RnngenError, TrainingDiverged
from rnngen.models import checkpoint
from rnngen.store.atomic import remove_stale_temps, write_atomic
from rnngen.store.checkpoint_format import FORMAT
from rnngen.store.runs import BEST, LAST, RunFolder
from rnngen.training.events import Logged
from rnngen.training.trainer import Trainer

TRAIN = (
    "train",
    "--corpus",
    "notes",
    "--preset",
    "tiny",
    "--steps",
    "20",
    "--eval-every",
    "10",
    "--eval-tokens",
    "2000",
    "--plain",
)


def rnngen(tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnngen",
        "--corpora-dir",
        str(tmp_path / "corpora"),
        "--checkpoints-dir",
        str(tmp_path / "checkpoints"),
        *args,
    ]


def one_line(result) -> str:
    """The error a user sees: exactly one line, no traceback, no 'a bug?'."""
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "Traceback" not in result.output and "a bug?" not in result.output
    return lines[0]


@pytest.fixture
def cli(run_cli, char_corpus):
    """`rnngen` with the `notes` corpus prepared."""
    return run_cli


# 1. Two runs at once ------------------------------------------------------------------------------------------


def test_two_trains_with_the_same_name_at_once_one_is_refused(char_corpus, tmp_path):
    gru = subprocess.Popen(
        rnngen(tmp_path, *TRAIN, "--model", "gru", "--seed", "1", "--name", "same"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lstm = subprocess.Popen(
        rnngen(tmp_path, *TRAIN, "--model", "lstm", "--seed", "2", "--name", "same"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors = {"gru": gru.communicate(timeout=300)[1], "lstm": lstm.communicate(timeout=300)[1]}
    codes = {"gru": gru.returncode, "lstm": lstm.returncode}
    assert sorted(codes.values()) == [0, 1], errors
    winner = min(codes, key=codes.get)
    loser = "lstm" if winner == "gru" else "gru"
    # Refused while the other trains, or (had it started late) because the run then exists.
    assert "in use by another rnngen train" in errors[loser] or "already exists" in errors[loser], errors[loser]
    assert len(errors[loser].strip().splitlines()) == 1
    run = RunFolder(tmp_path / "checkpoints" / "same")
    assert run.config()["model"]["kind"] == winner
    assert checkpoint.load(run.file(LAST)).model.kind == winner
    steps = [row["step"] for row in run.metrics() if row["event"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 20  # one run's rows, none mixed in


def test_a_run_in_use_cannot_be_resumed_by_a_second_process(cli, tmp_path):
    assert cli(*TRAIN, "--name", "busy").exit_code == 0
    run = RunFolder(tmp_path / "checkpoints" / "busy")
    with run.claim(resuming=True):  # another `rnngen train --resume busy` holds it
        line = one_line(cli("train", "--resume", "busy", "--steps", "40", "--plain"))
    assert f"in use by another rnngen train (pid {os.getpid()})" in line
    assert checkpoint.load(run.file(LAST)).step == 20
    assert cli("train", "--resume", "busy", "--steps", "40", "--plain").exit_code == 0


def test_a_lock_dies_with_its_process(char_corpus, tmp_path):
    folder = tmp_path / "checkpoints" / "crashed"
    script = (
        f"import time\nfrom rnngen.store.runs import RunFolder\nlock = RunFolder({str(folder)!r}).claim(False)\n"
        "print('locked', flush=True)\ntime.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RnngenError, match=f"in use by another rnngen train \\(pid {holder.pid}\\)"):
        RunFolder(folder).claim(False)
    holder.kill()  # kill -9: no cleanup runs
    holder.wait()
    RunFolder(folder).claim(False).release()


# 3. A run that fails before its first checkpoint ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("--weight-decay", "inf"), "--weight-decay must be a finite number, got inf"),
        (("--lr", "nan"), "--lr must be a finite number, got nan"),
        (("--time", "nan"), "--time must be a finite number, got nan"),
        (("--ema", "nan"), "--ema must be a finite number, got nan"),
        (("--eval-every", "10", "--eval-tokens", "1"), "--eval-tokens 1 is less than one window of --seq-len + 1"),
    ],
)
def test_bad_numbers_are_refused_before_the_run_folder_exists(cli, tmp_path, args, message):
    assert message in one_line(cli(*TRAIN, "--name", "early", *args))
    assert not (tmp_path / "checkpoints" / "early").exists()


def test_a_run_that_failed_before_its_first_checkpoint_can_be_started_again(cli, tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)
        line = one_line(cli(*TRAIN, "--name", "full"))
    assert "No space left on device; the run has no checkpoint yet" in line and "start it again" in line
    assert not (tmp_path / "checkpoints" / "full").exists()  # nothing to resume, so nothing is left
    assert "no checkpoint or run folder at full" in one_line(cli("train", "--resume", "full", "--plain"))
    result = cli(*TRAIN, "--name", "full")  # the same command again
    assert result.exit_code == 0, result.output
    run = RunFolder(tmp_path / "checkpoints" / "full")
    steps = [row["step"] for row in run.metrics() if row["event"] == "train"]
    assert steps == sorted(set(steps)) and checkpoint.load(run.file(LAST)).step == 20


def test_a_corrupt_train_split_then_fixed_corpus_trains_under_the_same_name(cli, char_corpus, tmp_path):
    train_bin = char_corpus.path / "train.bin"
    good = train_bin.read_bytes()
    train_bin.write_bytes(good[:10])
    assert "rebuild the corpus" in one_line(cli(*TRAIN, "--name", "corrupt"))
    train_bin.write_bytes(good)
    assert cli(*TRAIN, "--name", "corrupt").exit_code == 0


def test_token_ids_beyond_the_vocabulary_are_a_damaged_corpus(cli, char_corpus, tmp_path):
    assert cli(*TRAIN, "--name", "before").exit_code == 0
    for split in ("train", "val"):  # same size, one id past the vocabulary: what a bit flip or a bad copy leaves
        tokens = np.memmap(char_corpus.path / f"{split}.bin", dtype=char_corpus.dtype, mode="r+")
        tokens[len(tokens) // 2] = char_corpus.vocab_size
        tokens.flush()
        del tokens
    damaged = f"train.bin is damaged: it holds token id {char_corpus.vocab_size}, beyond the vocabulary of"
    assert damaged in one_line(cli(*TRAIN, "--name", "after"))
    assert not (tmp_path / "checkpoints" / "after").exists()
    assert damaged in one_line(cli("evaluate", "--checkpoint", "before"))
    assert "rebuild the corpus" in one_line(cli("train", "--resume", "before", "--steps", "40", "--plain"))


def test_a_folder_of_other_files_is_not_taken_over(cli, tmp_path):
    foreign = tmp_path / "checkpoints" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "metrics.jsonl").write_text('{"someone": "else"}\n')
    assert "holds files that are not a run's (metrics.jsonl)" in one_line(cli(*TRAIN, "--name", "mine"))
    assert (foreign / "metrics.jsonl").read_text() == '{"someone": "else"}\n'


# 4. Messages say what exists -----------------------------------------------------------------------------------


def test_divergence_before_the_first_checkpoint_does_not_promise_one(char_corpus, tmp_path):
    run = RunFolder(tmp_path / "runs" / "nan-early")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=40, eval_every=20), run)

    def poison(event):
        if isinstance(event, Logged) and event.step == 5:
            with torch.no_grad():
                trainer.model.head.bias.fill_(math.nan)

    trainer.on_event = poison
    with pytest.raises(TrainingDiverged, match="at step 6: no checkpoint had been saved yet; start again") as error:
        trainer.fit()
    assert "kept" not in str(error.value) and not run.file(LAST).exists()


# 5. Out of memory while saving ---------------------------------------------------------------------------------


class PanicException(BaseException):
    """What safetensors' Rust code raises when an allocation fails (pyo3_runtime.PanicException)."""


PanicException.__module__ = "pyo3_runtime"


@pytest.mark.parametrize("failure", [MemoryError(), PanicException("capacity overflow")])
def test_out_of_memory_while_saving_keeps_the_previous_last(char_corpus, tmp_path, monkeypatch, failure):
    run = RunFolder(tmp_path / "runs" / "oom")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=20), run)
    trainer.fit()
    before = run.file(LAST).read_bytes()

    def no_memory(tensors, filename, metadata=None):
        raise failure

    monkeypatch.setattr(checkpoint, "save_file", no_memory)
    with pytest.raises(CheckpointError, match="out of memory while serializing it; the previous checkpoint is intact"):
        trainer.save(best=True)
    monkeypatch.undo()
    assert run.file(LAST).read_bytes() == before
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]
    resumed = Trainer(char_corpus, *tiny(char_corpus, steps=30), run, resume_from=checkpoint.load(run.file(LAST)))
    assert resumed.fit()["steps"] == 30


SAVE_UNDER_A_MEMORY_LIMIT = """
import resource, sys
import torch
from rnngen.config import ModelConfig, TrainConfig
from rnngen.models import build
from rnngen.models import checkpoint
config = ModelConfig(kind="rnn", vocab_size=10, embed=8, hidden=5000, layers=1)  # 100 MB of weights
weights = checkpoint.model_weights(build(config))
ckpt = checkpoint.Checkpoint(config, TrainConfig(steps=1), {}, weights)
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 20_000_000, resource.RLIM_INFINITY))  # like `ulimit -v`
checkpoint.save(sys.argv[1], ckpt)
"""


def test_a_checkpoint_is_written_with_less_free_memory_than_its_size(tmp_path):
    # Serializing to bytes first needed the file's size twice more, and safetensors aborted the
    # process when that failed; the file is now streamed to disk.
    path = tmp_path / "last.safetensors"
    result = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_A_MEMORY_LIMIT, str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert path.stat().st_size > 100_000_000 and checkpoint.load(path).weights["rnn.weight_hh_l0"].shape == (5000, 5000)


def test_other_errors_while_saving_are_not_taken_for_memory(char_corpus, tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "runs" / "other")
    trainer = Trainer(char_corpus, *tiny(char_corpus, steps=20), run)

    def broken(tensors, filename, metadata=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()


# 6. Resuming from weights only ---------------------------------------------------------------------------------


def test_a_truncated_last_gives_advice_that_works(cli, tmp_path):
    assert cli(*TRAIN, "--name", "cut").exit_code == 0
    run = RunFolder(tmp_path / "checkpoints" / "cut")
    data = run.file(LAST).read_bytes()
    run.file(LAST).write_bytes(data[: len(data) // 2])
    line = one_line(cli("train", "--resume", "cut", "--steps", "40", "--plain"))
    advice = line[line.index("cp ") :].split()
    assert advice == ["cp", str(run.file(BEST)), str(run.file(LAST))]
    run.file(LAST).write_bytes(run.file(BEST).read_bytes())  # what the advice says
    result = cli("train", "--resume", "cut", "--steps", "40", "--plain")
    assert result.exit_code == 0, result.output
    assert "holds weights only: resuming at step 20 with a fresh optimizer" in result.output
    resumed = checkpoint.load(run.file(LAST))
    assert resumed.step == 40 and resumed.resume_state is not None


# 7. Temporary files of killed writers --------------------------------------------------------------------------


def test_temporary_files_carry_the_pid_and_dead_writers_files_are_removed(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(Path(src).name), real_replace(src, dst)))
    write_atomic(tmp_path / "last.safetensors", b"x")
    assert seen[0].startswith(f".last.safetensors.{os.getpid()}.") and seen[0].endswith(".tmp")
    monkeypatch.undo()

    stale = tmp_path / f".last.safetensors.{dead_pid()}.k2j4.tmp"
    live = tmp_path / f".best.safetensors.{os.getpid()}.q9z1.tmp"
    for path in (stale, live):
        path.write_bytes(b"half a checkpoint")
    assert remove_stale_temps(tmp_path) == [stale]
    assert live.exists() and (tmp_path / "last.safetensors").read_bytes() == b"x"


def dead_pid() -> int:
    """The id of a process that has ended."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(ended.stdout)


def test_resume_removes_what_a_kill_9_mid_write_left(cli, tmp_path):
    assert cli(*TRAIN, "--name", "killed").exit_code == 0
    folder = tmp_path / "checkpoints" / "killed"
    left = [folder / f".last.safetensors.{dead_pid()}.abc123.tmp", folder / ".tmpXk2Lq9"]  # ours, safetensors' own
    for path in left:
        path.write_bytes(b"half a checkpoint")
    assert cli("train", "--resume", "killed", "--steps", "30", "--plain").exit_code == 0
    assert not any(path.exists() for path in left)


# 9. Names ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc", ".", "..", "a/b", "x" * 101, ".hidden"])
def test_run_names_are_one_safe_path_component(cli, tmp_path, name):
    line = one_line(cli(*TRAIN, "--name", name))
    assert line.startswith("error: run name ") and "is not allowed: use 1 to 100 ASCII letters" in line
    checkpoints = tmp_path / "checkpoints"
    assert {p.name for p in tmp_path.iterdir()} <= {"checkpoints", "corpora", "notes.txt"}
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    assert not (tmp_path.parent / "etc").exists() and not list(tmp_path.glob("**/*.safetensors"))


def test_a_corpus_name_read_back_from_a_checkpoint_is_checked(cli, tmp_path):
    assert cli(*TRAIN, "--name", "hostile").exit_code == 0
    run = RunFolder(tmp_path / "checkpoints" / "hostile")
    ckpt = checkpoint.load(run.file(BEST))
    ckpt.corpus = {**ckpt.corpus, "name": "../../../etc", "path": str(tmp_path / "nowhere")}
    checkpoint.save(run.file(BEST), ckpt)
    line = one_line(cli("evaluate", "--checkpoint", str(run.file(BEST))))
    assert "the checkpoint's corpus name '../../../etc' is not allowed" in line


# One-liners ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("--steps", "nan"), "Invalid value for '--steps': 'nan' is not a count"),
        (("--steps", "inf"), "Invalid value for '--steps': 'inf' is not a count"),
        (("--seed", str(2**64)), "Invalid value for '--seed'"),
        (("--seed", "-1"), "Invalid value for '--seed'"),
    ],
)
def test_option_values_out_of_range_are_refused_by_the_parser(cli, tmp_path, args, message):
    result = cli(*TRAIN, "--name", "opts", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "checkpoints" / "opts").exists()


def test_evaluate_max_tokens_1_names_the_fix(cli):
    assert cli(*TRAIN, "--name", "ev").exit_code == 0
    assert "--max-tokens 1 leaves no token to predict" in one_line(
        cli("evaluate", "--checkpoint", "ev", "--max-tokens", "1")
    )
    assert cli("evaluate", "--checkpoint", "ev", "--max-tokens", "2").exit_code == 0


def test_over_long_names_in_resume_and_checkpoint_are_not_found(cli):
    long = "x" * 300
    assert f"no checkpoint or run folder at {long}" in one_line(cli("train", "--resume", long, "--plain"))
    assert f"no checkpoint or run folder at {long}" in one_line(cli("evaluate", "--checkpoint", long))


def test_plot_into_a_missing_folder_is_refused_before_reading_runs(cli, tmp_path):
    target = tmp_path / "missing" / "curves.png"
    assert f"--out {target}: the folder {target.parent} does not exist" in one_line(
        cli("plot", "any-run", "--out", str(target))
    )


def test_a_read_only_checkpoints_folder_names_the_fix(cli, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "checkpoints" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)  # as root, chmod cannot make a folder read-only
    line = one_line(cli(*TRAIN, "--name", "ro"))
    assert "cannot create the run folder" in line and "Permission denied; pass a writable --checkpoints-dir" in line


def test_a_run_of_another_checkpoint_format_is_left_out_of_the_list_and_refused_by_name(cli, tmp_path):
    assert cli(*TRAIN, "--name", "old").exit_code == 0
    config = tmp_path / "checkpoints" / "old" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "format": 1}))
    assert "no runs in" in cli("runs").output
    assert one_line(cli("runs", "old")) == (
        f"error: {config} is checkpoint format 1; this rnngen reads format {FORMAT}: "
        "train the run again with this rnngen"
    )


def test_a_metrics_line_that_is_json_but_not_an_object_breaks_no_listing(cli, tmp_path):
    assert cli(*TRAIN, "--name", "listed").exit_code == 0
    metrics = tmp_path / "checkpoints" / "listed" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '[1, 2]\n"text"\n3\n{"event": "eval", "val_bpc": "x"}\n')
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)[0]
    assert row["run"] == "listed" and row["steps"] == 20 and isinstance(row["best"], float)
    if importlib.util.find_spec("matplotlib") is not None:  # the curves skip such lines too
        metrics.write_text(metrics.read_text() + '{"event": "train", "step": 21}\n')
        assert cli("plot", "listed", "--out", str(tmp_path / "curves.png")).exit_code == 0


# 8. Weights that are not numbers (issue #41) ----------------------------------------------------------------------


def poison(path: Path, value: float = math.nan) -> None:
    """Write `value` into the checkpoint's head bias, as a run that diverged unnoticed (or a damaged copy) leaves it."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(path, framework="numpy") as file:
        metadata, tensors = file.metadata(), {name: file.get_tensor(name) for name in file.keys()}
    tensors["model.head.bias"][1] = value
    save_file(tensors, path, metadata=metadata)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_checkpoint_with_non_finite_weights_is_refused_wherever_it_is_opened(cli, tmp_path, value):
    assert cli(*TRAIN, "--name", "bad").exit_code == 0
    run = RunFolder(tmp_path / "checkpoints" / "bad")
    for name in (BEST, LAST):
        poison(run.file(name), value)
    # Named as the model's parameter, whether NumPy (complete on the CPU) or torch (evaluate, push, train) read it.
    refused = f"{run.file(BEST)} holds non-finite weights (NaN or inf in head.bias)"
    for args in (
        ("complete", "--checkpoint", "bad", "The model"),
        ("complete", "--checkpoint", "bad", "--beam", "2", "--json", "The model"),
        ("evaluate", "--checkpoint", "bad", "--json"),
        ("push", "bad", "alice/bad", "--dry-run", str(tmp_path / "upload")),
        ("train", "--corpus", "notes", "--init-from", "bad", "--steps", "5", "--plain"),
    ):
        line = one_line(cli(*args))
        assert refused in line and "resume from an earlier checkpoint or train again" in line, args
    assert not (tmp_path / "upload").exists()
    line = one_line(cli("train", "--resume", "bad", "--steps", "40", "--plain"))
    assert f"{run.file(LAST)} holds non-finite weights (NaN or inf in head.bias)" in line
    with pytest.raises(CheckpointError, match="non-finite weights"):
        checkpoint.load(run.file(BEST))


def test_json_output_never_carries_nan(cli, tmp_path, monkeypatch):
    import rnngen.evaluation
    from rnngen.evaluation import Evaluation

    assert cli(*TRAIN, "--name", "ok").exit_code == 0
    overflowed = Evaluation("x", "notes", "val", loss=math.nan, ppl=math.inf, bpc=math.nan, tokens=9, bounded=False)
    monkeypatch.setattr(rnngen.evaluation, "evaluate", lambda *args, **kwargs: overflowed)
    result = cli("evaluate", "--checkpoint", "ok", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))
    assert row["val_loss"] is None and row["corpus"] == "notes"
    # Every file rnngen writes and every --json output goes through the one writer that turns NaN and inf into null.
    package = Path(rnngen.evaluation.__file__).parent
    writers = [str(path.relative_to(package)) for path in package.rglob("*.py") if "json.dumps" in path.read_text()]
    assert writers == ["store/atomic.py"]


def test_a_damaged_run_is_listed_on_its_own_row_and_each_command_names_the_fix(cli, tmp_path):
    import shutil

    assert cli(*TRAIN, "--name", "good").exit_code == 0
    runs = tmp_path / "checkpoints"
    damage = {
        "truncated": ("config.json", lambda path: path.write_text(path.read_text()[:100]), "is truncated or not JSON"),
        "empty": ("config.json", lambda path: path.write_text(""), "is empty"),
        "listed": ("config.json", lambda path: path.write_text("[1, 2]"), "is not a JSON object"),
        "folder": ("config.json", lambda path: (path.unlink(), path.mkdir()), "is a directory, not a file"),
        "metrics": ("metrics.jsonl", lambda path: (path.unlink(), path.mkdir()), "is a directory, not a file"),
    }
    for name, (file, spoil, _) in damage.items():
        shutil.copytree(runs / "good", runs / name)
        spoil(runs / name / file)
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["run"]: row for row in json.loads(result.output)}
    assert set(rows) == {"good", *damage} and rows["good"]["damaged"] is None and rows["good"]["best"] > 0
    for name, (file, _, said) in damage.items():
        assert rows[name]["damaged"].startswith(f"{runs / name / file} {said}: "), rows[name]
        assert rows[name]["best"] is None
    table = cli("runs").output.splitlines()
    for name in ("good", *damage):  # the table shows every run, on a row of its own
        assert [line for line in table if line.startswith(f"│ {name} ") and ("damaged" in line) == (name != "good")]
    restore = (
        "resume the run (--resume writes it again from the checkpoint), restore it from a copy, or train the run again"
    )
    for name, (file, _, said) in damage.items():
        fix = restore if file == "config.json" else "move it out of the run folder"
        assert one_line(cli("runs", name)).startswith(f"error: {runs / name / file} {said}: {fix}"), name
    for command in (("complete", "the", "--checkpoint", "empty"), ("plot", "empty", "--out", str(tmp_path / "e.png"))):
        assert one_line(cli(*command)) == f"error: {rows['empty']['damaged']}", command
    for command in (
        ("plot", "metrics", "--out", str(tmp_path / "m.png")),
        ("train", "--resume", "metrics", "--steps", "25"),
    ):
        assert f"{runs / 'metrics' / 'metrics.jsonl'} is a directory" in one_line(cli(*command)), command
    # As the error says: moved out of the folder, the run resumes.
    (runs / "metrics" / "metrics.jsonl").rmdir()
    assert cli("train", "--resume", "metrics", "--steps", "25", "--plain").exit_code == 0
    # A damaged config.json is written again from the checkpoint by a resume, as its error says: the run lists again.
    assert cli("train", "--resume", "truncated", "--steps", "25", "--plain").exit_code == 0
    assert json.loads(cli("runs", "truncated", "--json").output)[0]["damaged"] is None
