"""Sharing on the Hugging Face Hub, up to the network: the folder `rnngen push` uploads, its model card,
`hf:USER/NAME` loaded from a hub cache laid out as huggingface_hub lays it, and the offline errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import yaml

import rnngen
from rnngen.models import checkpoint
from rnngen.store import hub
from rnngen.store.runs import RunFolder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache for this test; huggingface_hub read HF_HUB_CACHE when it was imported."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_model(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay `folder` out as snapshot_download leaves a download: models--USER--NAME/snapshots/COMMIT/, refs/main."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    return storage


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_upload_folder_holds_the_run_and_a_model_card_from_its_files(run_cli, trained, tmp_path):
    run = RunFolder(tmp_path / "checkpoints" / trained)
    folder = hub.upload_folder(run, "alice/notes-lstm", tmp_path / "upload")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "best.safetensors",
        "config.json",
        "tokenizer.model",
    ]
    assert (folder / "best.safetensors").read_bytes() == run.file("best.safetensors").read_bytes()
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "rnngen" and meta["pipeline_tag"] == "text-generation"
    assert {"rnngen", "lstm"} <= set(meta["tags"]) and "datasets" not in meta  # a local corpus has no hub page
    metric = meta["model-index"][0]["results"][0]["metrics"][0]
    assert metric["type"] == "bpc" and metric["value"] == round(run.best_val_bpc(), 4)
    assert "rnngen complete --checkpoint hf:alice/notes-lstm" in card and 'rnngen.load("hf:alice/notes-lstm")' in card
    best = checkpoint.load(run.file("best.safetensors"))
    params = sum(tensor.numel() for tensor in best.weights.values())
    assert f"{params:,} parameters" in card and f"for {best.step} steps" in card
    # config.json is the uploaded weights' own header, the card's step, however far `last` (the run's config.json)
    # has gone past them.
    uploaded = json.loads((folder / "config.json").read_text())
    assert uploaded == best.header() and uploaded["step"] == best.step


def test_the_uploaded_config_is_the_best_weights_own_when_the_run_trained_past_them(run_cli, trained, tmp_path):
    run = RunFolder(tmp_path / "checkpoints" / trained)
    config = run.config()
    run.write_config({**config, "step": config["step"] + 1000})  # `last` ahead of `best`
    folder = hub.upload_folder(run, "alice/notes-lstm", tmp_path / "upload")
    best = checkpoint.load(run.file("best.safetensors"))
    assert json.loads((folder / "config.json").read_text())["step"] == best.step != run.config()["step"]


def test_a_hub_corpus_is_named_in_the_card_metadata(run_cli, trained, tmp_path):
    run = RunFolder(tmp_path / "checkpoints" / trained)
    config = run.config()
    config["corpus"]["dataset"] = "karpathy/tiny_shakespeare"
    run.write_config(config)
    meta = front_matter(hub.model_card(run, "alice/shakespeare"))
    assert meta["datasets"] == ["karpathy/tiny_shakespeare"]
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "karpathy/tiny_shakespeare"


def test_push_dry_run_writes_the_folder_and_bad_ids_are_refused(run_cli, trained, tmp_path):
    result = run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "README.md").exists() and (tmp_path / "out" / "best.safetensors").exists()
    result = run_cli("push", trained, "not a repo id")
    assert result.exit_code == 1 and "USER/NAME" in result.output


def test_push_dry_run_keeps_a_users_own_files(run_cli, trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    result = run_cli("push", trained, "alice/notes", "--dry-run", str(mine))
    assert result.exit_code == 1
    assert f"{mine} holds other files than an earlier upload of {trained}: choose a new or empty folder" in (
        result.output
    )
    assert "--dry-run" in result.output and (mine / "README.md").read_text() == "my notes"
    # An earlier dry run of the same run is written over: that is how a user looks again after training more.
    assert run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "out")).exit_code == 0
    assert run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "out")).exit_code == 0
    # ... but not through a link onto a user's file, nor over a folder.
    (tmp_path / "out" / "README.md").unlink()
    (tmp_path / "out" / "README.md").symlink_to(mine / "README.md")
    assert run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "out")).exit_code == 1
    (tmp_path / "out" / "README.md").unlink()
    (tmp_path / "out" / "README.md").mkdir()
    assert run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "out")).exit_code == 1
    assert (mine / "README.md").read_text() == "my notes"


def test_push_uploads_only_the_runs_own_tokenizer(run_cli, trained, tmp_path, monkeypatch, text_file):
    run = RunFolder(tmp_path / "checkpoints" / trained)
    tokenizer = run.tokenizer_path.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text(text_file.read_text().upper())
    assert (
        run_cli("prepare", "--dataset", str(other), "--tokenizer", "char", "--name", "other", "--plain").exit_code == 0
    )
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    outside = tmp_path / "tokenizer-elsewhere.model"
    outside.write_bytes(tokenizer)
    monkeypatch.setattr(hub, "push", lambda *args: pytest.fail("a refused run was uploaded"))
    damaged = {
        "truncated": lambda path: path.write_bytes(tokenizer[: len(tokenizer) // 2]),
        "empty": lambda path: path.write_bytes(b""),
        "another corpus's": lambda path: path.write_bytes((tmp_path / "corpora/other/tokenizer.model").read_bytes()),
        "a link out of the run": lambda path: path.symlink_to(secret),
        "a link to the right tokenizer": lambda path: path.symlink_to(outside),
    }
    for what, damage in damaged.items():
        run.tokenizer_path.unlink()
        damage(run.tokenizer_path)
        for args in (("--dry-run", str(tmp_path / "upload")), ()):
            result = run_cli("push", trained, "alice/notes", *args)
            assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, (what, result.output)
            assert str(run.tokenizer_path) in result.output, (what, result.output)
        assert not (tmp_path / "upload").exists(), what
    assert "is a link to" in result.output and "replace the link with a copy of the run's file" in result.output
    run.tokenizer_path.unlink()
    run.tokenizer_path.write_bytes(tokenizer)
    assert run_cli("push", trained, "alice/notes", "--dry-run", str(tmp_path / "upload")).exit_code == 0
    assert (tmp_path / "upload" / "tokenizer.model").read_bytes() == tokenizer


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # a kill, a closed terminal
def test_a_signal_during_push_leaves_no_temporary_copy(run_cli, trained, tmp_path, monkeypatch, sig):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(hub, "push", lambda *args: os.kill(os.getpid(), sig))
    result = run_cli("push", trained, "alice/notes")
    assert result.exit_code == 128 + sig and f"stopped by {sig.name}" in result.output
    assert list(scratch.iterdir()) == []


def test_push_without_a_token_names_the_login(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    result = run_cli("push", trained, "alice/notes")
    assert result.exit_code == 1 and "huggingface-cli login" in result.output and "HF_TOKEN" in result.output


def test_hf_checkpoint_loads_from_the_hub_cache_offline_everywhere(run_cli, trained, tmp_path, hub_cache, monkeypatch):
    run = RunFolder(tmp_path / "checkpoints" / trained)
    cache_model(hub_cache, "alice/notes", hub.upload_folder(run, "alice/notes", tmp_path / "upload"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = ("complete", "The model", "--max-tokens", "20", "--seed", "3", "--plain")
    local = run_cli(*args, "--checkpoint", trained)
    for ref in ("hf:alice/notes", f"hf:alice/notes@{COMMIT}"):
        result = run_cli(*args, "--checkpoint", ref)
        assert result.exit_code == 0, result.output
        assert result.output == local.output
    model = rnngen.load("hf:alice/notes")
    assert model.complete("The model", max_tokens=20, seed=3) + "\n" == local.output
    result = run_cli("evaluate", "--checkpoint", "hf:alice/notes", "--corpus", "notes", "--json")
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.output)["val_bpc"]
        == json.loads(run_cli("evaluate", "--checkpoint", trained, "--json").output)["val_bpc"]
    )
    result = run_cli(
        "train",
        "--corpus",
        "notes",
        "--init-from",
        "hf:alice/notes",
        "--preset",
        "tiny",
        "--steps",
        "5",
        "--eval-every",
        "5",
        "--eval-tokens",
        "500",
        "--plain",
        "--name",
        "from-hub",
    )
    assert result.exit_code == 0, result.output


def test_an_uncached_hub_model_fails_within_seconds_naming_the_fix(run_cli, trained, hub_cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    started = time.monotonic()
    result = run_cli("complete", "hi", "--checkpoint", "hf:alice/missing")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1 and "not in the hub cache" in result.output and "network access" in result.output
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = run_cli("complete", "hi", "--checkpoint", "hf:alice/missing@v2")
    assert result.exit_code == 1 and "HF_HUB_OFFLINE" in result.output
    result = run_cli("complete", "hi", "--checkpoint", "hf:not-a-repo")
    assert result.exit_code == 1 and "USER/NAME" in result.output
