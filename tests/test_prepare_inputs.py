"""What `rnngen prepare` reads of its input: every file of a folder, documents of any length in bounded pieces, and
a text of only whitespace refused as an empty one is."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from conftest import sample_text

from rnngen.data import sources
from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CorpusError


def decoded(corpus, split: str) -> str:
    """The split's text, documents run together (the end-of-text ids left out)."""
    tok = corpus.tokenizer()
    return tok.decode([int(t) for t in corpus.tokens(split) if t != tok.eot_id])


@pytest.mark.parametrize("streaming", [False, True])
def test_a_folder_of_text_json_and_parquet_files_is_read_whole(tmp_path, streaming):
    folder = tmp_path / "mixed"
    folder.mkdir()
    text = sample_text(20_000, 1)
    (folder / "a.txt").write_text(text)
    # Each kind's text column is found as in a file of that kind alone: here `body`, the JSON's only string column.
    rows = [{"body": f"json row {i} says {sample_text(40, i)}", "n": i} for i in range(50)]
    (folder / "b.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    parquet = [f"parquet row {i}: {sample_text(30, 100 + i)}" for i in range(100)]
    pd.DataFrame({"text": parquet}).to_parquet(folder / "c.parquet")
    spec = SourceSpec(dataset=str(folder), streaming=streaming)
    corpus, _ = prepare(spec, TokenizerSpec("char"), root=tmp_path / "corpora")
    splits = corpus.meta["splits"]
    assert splits["train"]["documents"] + splits["val"]["documents"] == 1 + 50 + 100
    # Every file, kind after kind in a stable order: text, then JSON, then Parquet.
    assert decoded(corpus, "train") + decoded(corpus, "val") == text + "".join(r["body"] for r in rows) + "".join(
        parquet
    )


def test_a_folder_of_markdown_files_is_read(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.md").write_text(sample_text(3000, i))
    corpus, _ = prepare(SourceSpec(dataset=str(folder)), TokenizerSpec("char"), root=tmp_path / "corpora")
    assert corpus.characters("train") + corpus.characters("val") == 9000


def test_a_folder_with_files_rnngen_cannot_read_is_refused_naming_their_kinds(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text(sample_text(3000, 1))
    (folder / "b.tsv").write_text("text\tn\nsome words\t1\n")
    with pytest.raises(CorpusError, match=r"mixed holds \.tsv files, which rnngen does not read as text: move"):
        prepare(SourceSpec(dataset=str(folder)), TokenizerSpec("char"), root=tmp_path / "corpora")
    assert not (tmp_path / "corpora").exists() or not any((tmp_path / "corpora").iterdir())


def whole_documents(pieces) -> list[str]:
    documents, held = [], []
    for text, ends in pieces:
        held.append(text)
        if ends:
            documents.append("".join(held))
            held = []
    assert not held
    return documents


TEXT = (
    "= Alpha =\n\n"
    + "a line with no end " * 60
    + "\n  \n"
    + "short line\n \t \nthen a paragraph\n"
    + ("of many lines\n" * 30)
    + "\n\n\n = Beta = \n"
    + "x" * 700
    + "\n   \n\n"
    + " = Gamma = \n"
    + "last words"
)


@pytest.mark.parametrize("mode", ["lines", "paragraphs", "articles"])
def test_a_document_longer_than_a_piece_is_given_in_pieces_and_is_the_same_document(tmp_path, monkeypatch, mode):
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    expected = {
        "lines": [line for line in TEXT.split("\n") if line.strip()],
        "paragraphs": [part.strip("\n") for part in re.split(r"\n[ \t]*\n", TEXT) if part.strip()],
        "articles": [part.strip("\n") for part in re.split(r"(?m)^(?= ?= [^=\n].* = ?$)", TEXT) if part.strip()],
    }[mode]
    assert max(len(document) for document in expected) > 500
    monkeypatch.setattr(sources, "PIECE_CHARS", 37)
    pieces = list(sources.split_documents(sources.TextFiles([str(path)]).rows(), mode))
    assert whole_documents(pieces) == expected
    # Memory is bounded by the piece, whatever the length of a document.
    assert max(len(text) for text, _ in pieces) <= 3 * 37


@pytest.mark.parametrize("mode", ["lines", "paragraphs"])
def test_rows_of_a_dataset_are_cut_as_a_text_file_is(mode):
    rows = ["first row\n\nwith two paragraphs", "", "  ", "second\nrow\n"]
    expected = {
        "lines": ["first row", "with two paragraphs", "second", "row"],
        "paragraphs": ["first row", "with two paragraphs", "second\nrow"],
    }[mode]
    assert whole_documents(sources.split_documents([(row, True) for row in rows], mode)) == expected


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("documents", ["auto", "lines"])
def test_a_text_of_only_whitespace_is_refused_as_an_empty_one_is(tmp_path, streaming, documents):
    messages = []
    for name, text in (("empty", ""), ("blank", "   \n\n \t  \n")):
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        spec = SourceSpec(dataset=str(path), streaming=streaming, documents=documents)
        with pytest.raises(CorpusError) as refused:
            prepare(spec, TokenizerSpec("char"), root=tmp_path / "corpora", name=name)
        messages.append(str(refused.value).replace(str(path), "FILE"))
    assert messages[0] == messages[1] == "FILE has no text in split 'train' (column 'text')"
