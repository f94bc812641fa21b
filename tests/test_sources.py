"""Where documents come from: validation splits, what a document is, the hub probe, the tokenizer sample."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import sample_text

import rnngen
from rnngen.data import preparing, vocabulary
from rnngen.data.reading import Corpus
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.store import hub


def prepare(tmp_path: Path, dataset, kind: str = "char", name: str = "c", **spec):
    return preparing.prepare(
        SourceSpec(dataset=str(dataset), **spec), TokenizerSpec(kind), root=tmp_path / "corpora", name=name
    )[0]


def decoded_documents(c: Corpus, split: str) -> list[str]:
    tok = c.tokenizer()
    ids = [int(t) for t in c.tokens(split)]
    docs, start = [], 0
    for i, t in enumerate(ids):
        if t == tok.eot_id:
            docs.append(tok.decode(ids[start:i]))
            start = i + 1
    return docs


def hub_repo(tmp_path: Path, splits: dict[str, list[str]]) -> Path:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    for split, texts in splits.items():
        pd.DataFrame({"text": texts}).to_parquet(repo / "data" / f"{split}-00000.parquet")
    files = "".join(f"  - split: {split}\n    path: data/{split}-*\n" for split in splits)
    (repo / "README.md").write_text(f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}---\n")
    return repo


def test_a_test_split_is_used_only_when_named(tmp_path):
    repo = hub_repo(tmp_path, {"train": [sample_text(2000, s) for s in range(10)], "test": [sample_text(900, 99)]})
    held_out = prepare(tmp_path, repo, name="tail")
    assert held_out.meta["validation_from"].startswith("last 10% of the characters")
    assert "--val-split test" in held_out.meta["validation_from"]
    assert held_out.characters("train") + held_out.characters("val") == 20_000
    named = prepare(tmp_path, repo, name="test", val_split="test")
    assert named.meta["validation_from"] == "split test" and named.characters("val") == 900


WIKITEXT_ROWS = [
    "",
    " = Alpha = \n",
    "",
    " The first article has a sentence .\n",
    "",
    " = = History = = \n",
    "",
    " It goes on in a second section .\n",
    "",
    " = Beta = \n",
    "",
    " The second article is short .\n",
]


def test_line_per_row_text_is_joined_into_articles(tmp_path):
    repo = hub_repo(tmp_path, {"train": WIKITEXT_ROWS * 20, "validation": WIKITEXT_ROWS})
    c = prepare(tmp_path, repo)
    assert c.meta["source"]["documents"] == "articles"
    docs = decoded_documents(c, "val")
    assert docs == [
        " = Alpha = \n\n The first article has a sentence .\n\n = = History = = \n\n It goes on in a second section .",
        " = Beta = \n\n The second article is short .",
    ]
    assert c.meta["splits"]["train"]["documents"] == 40
    rows = prepare(tmp_path, repo, name="rows", documents="rows")
    assert rows.meta["splits"]["val"]["documents"] == 6  # the non-empty rows


def test_a_text_file_with_headings_is_cut_into_articles(tmp_path):
    path = tmp_path / "wiki.txt"
    path.write_text("".join(row or "\n" for row in WIKITEXT_ROWS * 20))
    c = prepare(tmp_path, path, documents="articles")
    assert c.meta["splits"]["train"]["documents"] + c.meta["splits"]["val"]["documents"] == 40
    assert decoded_documents(c, "val")[-1] == " = Beta = \n\n The second article is short ."


def test_text_file_as_lines_or_paragraphs(tmp_path):
    path = tmp_path / "jokes.txt"
    jokes = [f"joke number {i} is a short one" for i in range(40)]
    path.write_text("\n".join(jokes) + "\n")
    whole = prepare(tmp_path, path, name="file").meta["splits"]
    assert whole["train"]["documents"] + whole["val"]["documents"] == 1  # one document, cut by characters
    lines = prepare(tmp_path, path, name="lines", documents="lines")
    # The held-out tail is cut by characters, so the first validation line is a part of a line.
    assert lines.meta["splits"]["train"]["documents"] == 36 and decoded_documents(lines, "val")[1:] == jokes[37:]
    paragraphs_path = tmp_path / "paragraphs.txt"
    paragraphs_path.write_text("\n\n".join(f"line {i}\nand more {i}" for i in range(20)) + "\n")
    paragraphs = prepare(tmp_path, paragraphs_path, name="paragraphs", documents="paragraphs")
    assert decoded_documents(paragraphs, "val")[-1] == "line 19\nand more 19"
    assert paragraphs.meta["splits"]["train"]["documents"] == 18


def test_tokenizer_sample_is_spread_over_the_whole_split(tmp_path, monkeypatch):
    monkeypatch.setattr(vocabulary, "TOKENIZER_SAMPLE_CHARS", 20_000)
    monkeypatch.setattr(vocabulary, "SAMPLE_PIECE_CHARS", 1_000)
    path = tmp_path / "late.txt"
    path.write_text(sample_text(100_000) + "Жж" * 5_000 + sample_text(20_000, 1))  # the tail alone has Ж
    c = prepare(tmp_path, path)
    tok = c.tokenizer()
    # Ж is a piece of its own, not byte fallback: the tokenizer saw the tail of the corpus.
    assert all(not tok.sp.is_byte(i) for i in tok.encode("Ж"))


class _Proxy(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_HEAD(self):
        _Proxy.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_hub_probe_goes_through_the_proxy(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")  # not resolvable: only the proxy can reach it
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_port}")
        assert hub.hub_reachable()
        assert _Proxy.seen[-1].startswith("http://hub.invalid")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        assert not hub.hub_reachable()
    finally:
        server.shutdown()
        thread.join()


def test_the_table_of_a_single_text_says_its_train_split_is_part_of_it(run_cli, text_file):
    result = run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "one", "--plain")
    train_row = next(line for line in result.output.splitlines() if "train" in line and "│" in line)
    assert "part of 1" in train_row


def test_an_unreachable_hub_leaves_the_process_online_afterwards(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    from rnngen.data import sources
    from rnngen.errors import CorpusError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "hub_reachable", lambda: False)
    before = (huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    with pytest.raises(CorpusError, match="cannot reach the Hugging Face hub for 'nobody/nothing-here'"):
        rnngen.prepare("nobody/nothing-here", corpora=tmp_path / "corpora")
    # The fast offline answer was for that one call: the user's environment and the libraries are as they were.
    assert "HF_HUB_OFFLINE" not in os.environ
    assert (huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE) == before


def test_a_char_tokenizer_refuses_a_vocabulary_size_it_would_ignore(run_cli, text_file):
    result = run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--vocab-size", "70000")
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "--tokenizer char takes every character of the text as its vocabulary: drop --vocab-size"
    )
    with pytest.raises(rnngen.errors.CorpusError, match="tokenizer char takes every character"):
        rnngen.prepare(str(text_file), tokenizer="char", vocab_size=100)
