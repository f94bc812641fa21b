"""The sweep and first-run benchmarks run end to end on tiny data, and the serve benchmark's arithmetic on a
made-up timeline: what they compute, not how well models do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import firstrun, serve, sweep
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


def test_the_comparison_trains_both_sides_on_equal_tokens_and_reports_the_lead(char_corpus):
    row = firstrun.compare(char_corpus, None, 2 * 32 * 64)
    # The plain loop's 2 steps of 32 x 64 tokens, and as many tokens of the preset's own batches.
    assert row["plain_steps"] == 2 and row["plain_tokens"] == row["rnngen_tokens"] == 2 * 32 * 64
    assert row["rnngen_steps"] == 2 * 32 * 64 // (PRESETS["cpu"].train.batch_size * PRESETS["cpu"].train.seq_len)
    assert row["lead_bpc"] == row["plain_val_bpc"] - row["rnngen_val_bpc"] and 0 < row["rnngen_val_bpc"] < 20
    assert row["plain_vocab"] < char_corpus.vocab_size and row["tokenizer"] == f"char {char_corpus.vocab_size}"


def test_the_held_out_score_is_bits_per_character_of_the_whole_split(char_corpus):
    # A model that finds every token equally likely pays log2(vocabulary) bits a token, on both vocabularies.
    _, val, vocab = firstrun.own_vocabulary(char_corpus)
    characters = char_corpus.characters("val")
    for tokens, size in ((None, char_corpus.vocab_size), (val, vocab)):
        uniform = firstrun.PlainLM(size, size=8, layers=1)
        torch.nn.init.zeros_(uniform.decoder.weight)
        score = firstrun.held_out_bpc(char_corpus, tokens)(uniform)
        assert score == pytest.approx(math.log2(size) * len(val) / characters, rel=1e-5)


def test_english_and_prose_shares_score_what_the_issue_counts():
    words = {"the", "model", "learns"}
    assert firstrun.word_share(["The model learns, 42 zqx."], words) == 0.75
    assert firstrun.prose_share(["prose line\n>>> code\n    indented"]) == len("prose line") / len(
        "prose line>>> code    indented"
    )


def test_serve_figures_count_the_tokens_of_the_window_and_each_chunks_wait_once():
    streams = [
        serve.Stream(0.0, [(1.0, 1), (2.0, 1), (4.0, 2)]),
        serve.Stream(0.5, [(1.5, 1), (2.5, 3)], ended=True),
    ]
    assert serve.window_start(streams, 2) == 1.5 and serve.first_token_seconds(streams) == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="only 2 of 3"):
        serve.window_start(streams, 3)
    figures = serve.stream_figures(streams, 1.5, 4.0)
    # After 1.5 s: 1 + 2 + 3 tokens in 2.5 s, in 3 chunks; the gaps are 1, 2 and 1 s, then 0 for the tokens that
    # came in the same chunk: [0, 0, 0, 1, 1, 2], whose 99th percentile is 1.95 s.
    assert figures["tokens_per_s"] == pytest.approx(6 / 2.5) and figures["tokens_per_chunk"] == 2
    assert figures["p99_gap_ms"] == pytest.approx(1950)
    assert serve.checked(streams, 4) == streams
    with pytest.raises(RuntimeError, match="not 5"):
        serve.checked(streams, 5)  # a stream that ended early: the model was meant never to end a text
