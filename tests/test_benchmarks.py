"""The sweep and first-run benchmarks run end to end on tiny data (their figures are not checked here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import firstrun, sweep
from rnngen.config import PRESETS


def test_sweep_point_reports_its_settings_and_score(tmp_path: Path, text_file: Path):
    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps([{"name": "small gru", "model": {"kind": "gru", "embed": 32, "hidden": 32}}, {"name": "skipped"}])
    )
    saved = []
    rows = sweep.run(text_file, tmp_path / "corpora", None, 2, grid, "char", ["small gru"], "gpu", saved.append)
    assert [row["point"] for row in rows] == ["small gru"] and saved == rows
    row = rows[0]
    assert row["model"]["kind"] == "gru" and row["model"]["hidden"] == 32
    assert row["model"]["layers"] == PRESETS["gpu"].model.layers  # the rest from --preset gpu
    assert row["train"]["min_lr_ratio"] == 0.1 and row["tokenizer"].startswith("char ")
    assert row["steps"] == 2 and 0 < row["val_bpc"] < 20


def test_plain_loop_trains_for_its_wall_time_or_its_steps(char_corpus):
    result = firstrun.plain_loop(char_corpus, 0.5, batch=4, window=16)
    assert result["steps"] >= 1 and result["seconds"] >= 0.5 and 0 < result["val_bpc"] < 20
    assert firstrun.plain_loop(char_corpus, None, batch=4, window=16, steps=3)["steps"] == 3
    assert firstrun.token_count("0.5M") == 500_000 and firstrun.token_count("2000") == 2000


def test_the_plain_loop_learns_on_the_texts_own_characters(char_corpus):
    train, val, vocab = firstrun.own_vocabulary(char_corpus)
    text = char_corpus.tokens("train")
    # A user's loop builds its vocabulary from the text: no byte pieces the text never uses.
    assert vocab == len(set(text.tolist())) + 1 < char_corpus.vocab_size - 200
    assert train.max() < vocab - 1 and val.max() < vocab
    # The same text, renumbered: equal ids stay equal.
    assert (np.unique(train, return_inverse=True)[1] == np.unique(np.asarray(text), return_inverse=True)[1]).all()


def test_both_sides_of_the_comparison_get_the_same_score(char_corpus):
    scored = []
    row = sweep.point(
        char_corpus,
        {"name": "tiny", "model": {"hidden": 16, "embed": 16}},
        None,
        2,
        "tiny",
        lambda model: scored.append(model) or 1.25,
    )
    assert row["val_bpc"] == 1.25 and scored[0].embedding.weight.shape[1] == 16


def test_english_and_prose_shares_score_what_the_issue_counts():
    words = {"the", "model", "learns"}
    assert firstrun.word_share(["The model learns, 42 zqx."], words) == 0.75
    assert firstrun.prose_share(["prose line\n>>> code\n    indented"]) == len("prose line") / len(
        "prose line>>> code    indented"
    )
