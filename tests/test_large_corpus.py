"""Corpora of any size: a text is read, sampled and encoded in pieces, and the corpus is the one a whole read
gives; training's unigram counts and evaluation read the splits a block or a window at a time."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import sample_text

import rnngen
from rnngen.cli import display
from rnngen.cli.main import cli
from rnngen.data import encoding, reading, sources, vocabulary
from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CorpusError


def long_text(chars: int) -> str:
    """Lines of pseudo-English with blank lines, headings and one line longer than a chunk."""
    rows = sample_text(chars, 3).split("\n")
    for number in range(0, len(rows), 7):
        rows[number] = f" = Title {number} = " if number % 14 else ""
    rows[len(rows) // 2] = "one line without end " * 200
    return "\n".join(rows)


def corpus_figures(tmp_path, name: str, spec: SourceSpec, tok: TokenizerSpec) -> dict:
    corpus, _ = prepare(spec, tok, root=tmp_path / "corpora", name=name)
    return {key: corpus.meta[key] for key in ("splits", "fingerprint", "validation_from")} | {
        "tokenizer": corpus.meta["tokenizer"]["sha256"]
    }


@pytest.mark.parametrize("documents", ["rows", "lines", "paragraphs", "articles"])
def test_a_text_read_in_small_pieces_gives_the_corpus_of_a_whole_read(tmp_path, monkeypatch, documents):
    path = tmp_path / "big.txt"
    path.write_text(long_text(60_000))
    # A sample spread over the split, and chunks and batches many times smaller than the text.
    monkeypatch.setattr(vocabulary, "TOKENIZER_SAMPLE_CHARS", 20_000)
    monkeypatch.setattr(vocabulary, "SAMPLE_PIECE_CHARS", 1_000)
    monkeypatch.setattr(encoding, "CHUNK_CHARS", 700)
    monkeypatch.setattr(encoding, "BATCH_CHARS", 3_000)
    spec, tok = SourceSpec(dataset=str(path), documents=documents), TokenizerSpec("unigram", 400)
    monkeypatch.setattr(sources, "PIECE_CHARS", 10**9)
    whole = corpus_figures(tmp_path, "whole", spec, tok)
    monkeypatch.setattr(sources, "PIECE_CHARS", 997)
    assert corpus_figures(tmp_path, "pieces", spec, tok) == whole
    if documents != "rows":
        assert whole["splits"]["train"]["documents"] > 10


def test_a_byte_that_is_not_utf8_is_reported_at_its_offset_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PIECE_CHARS", 1_000)
    path = tmp_path / "notes.txt"
    # The bad byte far past the first block the decoder is given, after a character cut across two blocks.
    path.write_bytes("é".encode() * 30_001 + b"\xff" + b"more")
    with pytest.raises(CorpusError, match=r"not UTF-8 text \(invalid start byte at byte 60002\)"):
        prepare(SourceSpec(dataset=str(path)), TokenizerSpec("char"), root=tmp_path / "corpora")


@pytest.mark.parametrize(("text", "documents"), [("= Title =\n\n", "articles"), ("= Title =\n\n\nText\n", "rows")])
def test_a_text_file_is_told_articles_from_its_beginning_as_from_its_whole_text(tmp_path, text, documents):
    # A whole row is a heading (its file a list of articles) when it is one heading line and at most two newlines.
    path = tmp_path / "notes.txt"
    path.write_text(text)
    assert sources.detect_documents([text]) == documents
    assert sources.open_source(SourceSpec(dataset=str(path)), tmp_path / "cache").info["documents"] == documents


def test_parts_of_a_document_do_not_depend_on_the_pieces_it_was_read_in(monkeypatch):
    monkeypatch.setattr(encoding, "CHUNK_CHARS", 50)
    rng = random.Random(0)
    doc = "".join(rng.choice(["word ", "longerword ", "\n", "x" * 70]) for _ in range(400))
    whole = list(encoding.parts([(doc, True)]))
    cuts = sorted(rng.sample(range(1, len(doc)), 40))
    pieces = [(doc[a:b], b == len(doc)) for a, b in zip([0, *cuts], [*cuts, len(doc)])]
    assert list(encoding.parts(pieces)) == whole
    assert "".join(part for part, _ in whole) == doc
    assert [end for _, end in whole] == [False] * (len(whole) - 1) + [True]
    # Each part is a chunk at most, cut after a newline whenever one fits.
    assert all(len(part) <= 50 and (part.endswith("\n") or "\n" not in part) for part, _ in whole[:-1])


def test_a_single_document_is_split_in_pieces_at_the_same_character(tmp_path):
    pieces = [("abcd", False), ("efgh", False), ("ij", True)]
    split = list(encoding.split_by_characters(pieces, 10, 0.3))
    assert split == [
        ("train", ("abcd", False)),
        ("train", ("efg", False)),
        ("val", ("h", False)),
        ("val", ("ij", True)),
    ]


def test_unigram_counts_are_counted_block_by_block(char_corpus, monkeypatch):
    tokens = np.asarray(char_corpus.tokens("train"))
    monkeypatch.setattr(reading, "BLOCK_TOKENS", 1000)
    assert len(tokens) > 5000
    assert (char_corpus.token_counts("train") == np.bincount(tokens, minlength=char_corpus.vocab_size)).all()


def test_evaluation_reports_progress_and_its_figures_do_not_depend_on_the_window(trained):
    told = []
    result = rnngen.evaluate(trained, device="cpu", progress=lambda done, total: told.append((done, total)))
    assert told[-1] == (result.val_tokens, result.val_tokens) and len(told) > 1
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    # The window is how much is read at a time, not what is read: the figures are the same.
    long, short = (rnngen.evaluate(trained, device="cpu", seq_len=length) for length in (64, 7))
    assert short.val_loss == pytest.approx(long.val_loss, rel=1e-5) and short.val_tokens == long.val_tokens


def test_evaluation_takes_no_progress_callback_as_documented(trained):
    assert rnngen.evaluate(trained, device="cpu", max_tokens=2000, progress=None).val_tokens > 1000


def test_evaluate_says_the_default_bound_and_json_keeps_progress_on_stderr(trained, monkeypatch):
    assert rnngen.evaluation.MAX_TOKENS == 1_000_000
    assert "[default: 1000000; x>=0]" in " ".join(CliRunner().invoke(cli, ["evaluate", "-h"]).output.split())
    monkeypatch.setattr(display.EvaluateProgress, "LINE_SECONDS", 0.0)
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", trained, "--json", "--max-tokens", "2000"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["bounded"] and figures["val_tokens"] < 2000
    assert f"evaluated {figures['val_tokens']:,} of {figures['val_tokens']:,} tokens" in result.stderr
    printed = CliRunner().invoke(cli, ["evaluate", "--checkpoint", trained, "--max-tokens", "2000"]).stdout
    assert "--max-tokens 0 for the whole split" in " ".join(printed.split())
