"""`rnngen prepare` against concurrent runs, kills, hostile names, full disks and damaged corpora."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

import rnngen
from rnngen.data import building, encoding, preparing
from rnngen.data.reading import Corpus, claim_corpus, list_corpora
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CorpusError
from rnngen.store.names import InvalidName, check_name
from rnngen.training.events import Logged


def prepare(tmp_path, text_file, name="c", force=False, **spec):
    return preparing.prepare(
        SourceSpec(dataset=str(text_file), **spec),
        TokenizerSpec("char"),
        root=tmp_path / "corpora",
        name=name,
        force=force,
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_prepare_of_the_same_name_is_refused_while_the_first_runs(tmp_path, text_file):
    root = tmp_path / "corpora"
    root.mkdir()
    with preparing._lock(root, "c"):  # what a running prepare holds
        with pytest.raises(CorpusError, match=r"another `rnngen prepare` \(process \d+\) is preparing corpus c"):
            prepare(tmp_path, text_file)
        other, _ = prepare(tmp_path, text_file, name="other")  # other names go ahead
    assert other.name == "other"
    c, reused = prepare(tmp_path, text_file)
    assert not reused and sorted(p.name for p in root.iterdir()) == ["c", "other"]


def test_temporary_folders_are_removed_only_when_their_process_is_gone(tmp_path, text_file):
    root = tmp_path / "corpora"
    root.mkdir()
    live = [root / f".tmp-c-{os.getppid()}", root / f".tmp-other-{os.getppid()}"]  # a prepare still running
    dead = [root / f".tmp-c-{dead_pid()}", root / f".tmp-c-old-{dead_pid()}"]  # killed with SIGKILL
    for folder in live + dead:
        (folder / "x").mkdir(parents=True)
    prepare(tmp_path, text_file, force=True)
    assert all(folder.exists() for folder in live) and not any(folder.exists() for folder in dead)


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from rnngen.data import preparing
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec

rename = Path.rename


def killed_after_moving_aside(self, target):
    moved = rename(self, target)
    if "-old-" in Path(target).name:  # the old corpus is aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    return moved


Path.rename = killed_after_moving_aside
preparing.prepare(SourceSpec(dataset=sys.argv[1], max_chars=5000), TokenizerSpec("char"), root=Path(sys.argv[2]),
                  name="c", force=True)
"""


def test_a_force_prepare_killed_between_its_renames_keeps_the_old_corpus(tmp_path, text_file):
    root = tmp_path / "corpora"
    before, _ = prepare(tmp_path, text_file)
    tokens = before.tokens("train").tolist()
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(text_file), str(root)])
    assert killed.returncode == -signal.SIGKILL
    assert not (root / "c").exists() and len(list(root.glob(".tmp-c-old-*"))) == 1
    prepare(tmp_path, text_file, name="other")  # its cleanup of dead prepares' folders keeps c's old corpus
    assert len(list(root.glob(".tmp-c-old-*"))) == 1
    again, reused = prepare(tmp_path, text_file)  # the next prepare of c puts it back first
    assert reused and again.tokens("train").tolist() == tokens
    assert sorted(p.name for p in root.iterdir()) == ["c", "other"]


def test_a_force_prepare_does_not_replace_a_corpus_a_run_trains_on(tmp_path, text_file):
    prepare(tmp_path, text_file)
    refused = []

    def rebuild_while_training(event):
        if isinstance(event, Logged) and not refused:
            with pytest.raises(CorpusError) as error:
                prepare(tmp_path, text_file, force=True, max_chars=5000)
            refused.append(str(error.value))

    summary = rnngen.train(
        "c",
        "tiny",
        name="r",
        corpora=tmp_path / "corpora",
        checkpoints=tmp_path / "checkpoints",
        steps=4,
        log_every=2,
        eval_every=4,
        eval_tokens=500,
        samples=False,
        on_event=rebuild_while_training,
    )
    assert summary.steps == 4
    assert re.fullmatch(
        r"corpus c is in use by rnngen train \(process \d+\): wait for the run to end, or prepare under another name",
        refused[0],
    )
    # The run has ended: the rebuild goes ahead, and the run resumes on nothing else.
    prepare(tmp_path, text_file, force=True, max_chars=5000)


def test_a_run_does_not_start_on_a_corpus_a_prepare_is_replacing(tmp_path, text_file):
    corpus, _ = prepare(tmp_path, text_file)
    with claim_corpus(corpus.path, replacing=True):  # what a `prepare --force` of c holds
        with pytest.raises(CorpusError, match=r"^corpus c is being rebuilt by rnngen prepare \(process \d+\)"):
            rnngen.train("c", "tiny", name="r", corpora=tmp_path / "corpora", checkpoints=tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints" / "r").exists()


def test_sigterm_stops_prepare_like_ctrl_c_and_leaves_nothing(tmp_path, text_file, monkeypatch):
    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(building, "encode_into", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path, text_file)
    assert not (tmp_path / "corpora").exists()  # created by this prepare, removed with all it held
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_rnngen_prepare_exits_as_a_terminated_process(run_cli, tmp_path, text_file, monkeypatch):
    monkeypatch.setattr(building, "encode_into", lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM))
    result = run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "c")
    assert result.exit_code == 143 and result.output.splitlines()[-1] == "stopped by SIGTERM"
    assert not (tmp_path / "corpora").exists()


@pytest.mark.parametrize(
    "name", ["../../etc", ".", "..", "a/b", ".hidden", "", "x" * 101, "name with space", "körpus", "-x"]
)
def test_names_are_one_safe_path_component(tmp_path, text_file, name):
    with pytest.raises(InvalidName, match="is not allowed: use 1 to 100 ASCII letters, digits"):
        prepare(tmp_path, text_file, name=name)
    with pytest.raises(InvalidName):
        Corpus.find(tmp_path / "corpora", name)
    assert not (tmp_path / "etc").exists()


def test_valid_names_pass():
    for name in ("notes", "wikitext-2-raw-v1", "a.b_c", "x" * 100):
        assert check_name(name) == name
    assert preparing.name_for("a" * 300 + ".txt", None) == "a" * 100


def test_damaged_meta_and_tokenizer_are_caught_when_opened_and_listed(tmp_path, text_file, run_cli):
    good, _ = prepare(tmp_path, text_file, name="good")
    bad, _ = prepare(tmp_path, text_file, name="bad")
    (bad.path / "meta.json").write_text("[]")
    with pytest.raises(CorpusError, match="lacks the name, tokenizer or splits of the corpus: rebuild"):
        Corpus.open(bad.path)
    assert [meta["name"] for meta in list_corpora(tmp_path / "corpora")] == ["good"]
    result = run_cli("corpora")
    assert result.exit_code == 0 and "good" in result.output
    meta = json.loads((good.path / "meta.json").read_text())
    # A corpus of the earlier layout (no fingerprint or request) is refused by its version, not as incomplete.
    earlier = {key: value for key, value in meta.items() if key not in ("fingerprint", "request")}
    (bad.path / "meta.json").write_text(json.dumps(earlier | {"format": 1}))
    with pytest.raises(CorpusError) as refused:
        Corpus.open(bad.path)
    assert str(refused.value) == (
        f"{bad.path} is corpus format 1; this rnngen reads format 2: rebuild it with `rnngen prepare ... --force`"
    )
    (bad.path / "meta.json").write_text(json.dumps(meta | {"name": "../../evil"}))
    with pytest.raises(CorpusError, match="lacks the name"):
        Corpus.open(bad.path)
    (good.path / "tokenizer.model").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(CorpusError, match="tokenizer.model"):
        Corpus.open(good.path)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, text_file, monkeypatch):
    def no_space(self, ids):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(encoding.TokenFile, "write", no_space)
    with pytest.raises(CorpusError, match="cannot write corpus c in .*No space left on device: free some space"):
        prepare(tmp_path, text_file)
    assert not (tmp_path / "corpora").exists()  # created by this prepare, removed with all it held


def test_max_chars_must_be_a_finite_count(tmp_path, text_file, run_cli):
    for value in ("nan", "inf", "-inf"):
        result = run_cli("prepare", "--dataset", str(text_file), "--max-chars", value)
        assert result.exit_code == 2 and "is not a count like 5000" in result.output
    with pytest.raises(CorpusError, match="max_chars must be a whole number"):
        prepare(tmp_path, text_file, max_chars=float("nan"))


def test_a_text_column_of_mixed_types_is_found_and_read(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [
        {"text": "hello there, this is a row of text", "n": 1},
        {"text": 5, "n": 2},
        {"text": "and another row of text follows", "n": 3},
    ] * 10
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    for column in (None, "text"):
        c, _ = preparing.prepare(
            SourceSpec(dataset=str(path), text_column=column),
            TokenizerSpec("char"),
            root=tmp_path / "corpora",
            name=f"mixed-{column}",
        )
        assert c.meta["source"]["text_column"] == "text"
        assert c.characters("train") + c.characters("val") == 10 * len(rows[0]["text"] + rows[2]["text"])


def test_a_failed_first_prepare_leaves_no_empty_corpora_folder(tmp_path, text_file):
    with pytest.raises(CorpusError, match="no such file"):
        prepare(tmp_path, tmp_path / "nope.txt")
    assert not (tmp_path / "corpora").exists()
    (tmp_path / "corpora").mkdir()  # a folder the user made is theirs: kept
    with pytest.raises(CorpusError, match="no such file"):
        prepare(tmp_path, tmp_path / "nope.txt")
    assert (tmp_path / "corpora").is_dir()


def test_an_embedded_corpus_of_another_recipe_is_kept_for_the_runs_trained_on_it(run_cli, tmp_path, monkeypatch):
    import datasets
    from conftest import TINY, sample_text

    from rnngen.data import pydocs

    seed = 1

    def load():  # the embedded corpus's documents, as the recipe of the rnngen installed at the time makes them
        texts = [sample_text(800, seed=seed * 1000 + i) for i in range(60)]
        rows = [{"text": text, "raw_chars": len(text), "module": f"pkg:m{i}.py"} for i, text in enumerate(texts)]
        return datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)})

    monkeypatch.setattr(pydocs, "load", load)
    assert run_cli("train", *TINY, "--name", "early").exit_code == 0
    corpora = tmp_path / "corpora"
    meta = json.loads((corpora / "pydocs" / "meta.json").read_text())
    meta["source"]["recipe"] = pydocs.RECIPE - 1  # made by an earlier rnngen, whose recipe made other text
    (corpora / "pydocs" / "meta.json").write_text(json.dumps(meta))
    seed = 2
    result = run_cli("train", *TINY, "--name", "later")
    assert result.exit_code == 0, result.output
    current = f"pydocs-r{pydocs.RECIPE}"
    assert f"preparing the embedded corpus {current} (once; it needs no network); {corpora / 'pydocs'}, made by " in (
        result.output
    )
    assert json.loads((tmp_path / "checkpoints" / "later" / "config.json").read_text())["corpus"]["name"] == current
    assert json.loads((corpora / "pydocs" / "meta.json").read_text()) == meta
    # The earlier run still resumes and is evaluated on the corpus it trained on; both are listed.
    result = run_cli("train", "--resume", "early", "--steps", "40", "--plain")
    assert result.exit_code == 0, result.output
    result = run_cli("evaluate", "--checkpoint", "early", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["corpus"] == "pydocs", result.output
    assert {row["name"] for row in json.loads(run_cli("corpora", "--json").output)} == {"pydocs", current}
    # A plain run trains on this recipe's corpus; naming the old one to rebuild it in place takes --force.
    result = run_cli("train", *TINY, "--name", "again")
    assert result.exit_code == 0 and "preparing the embedded corpus" not in result.output
    result = run_cli("prepare", "--name", "pydocs", "--plain")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "holds the embedded corpus of another rnngen's recipe" in result.output and "--force" in result.output
