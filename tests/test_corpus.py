"""`rnngen prepare`: sources, splits, tokenizers, atomic writes, cached reruns and errors."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import sample_text
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.data import building, preparing, tokenizer
from rnngen.data.encoding import token_dtype
from rnngen.data.reading import Corpus
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec
from rnngen.errors import CorpusError


def prepare(tmp_path: Path, dataset: str | Path, kind: str = "unigram", **spec):
    vocab = spec.pop("vocab_size", None)
    name = spec.pop("name", "c")
    return preparing.prepare(
        SourceSpec(dataset=str(dataset), **spec), TokenizerSpec(kind, vocab), root=tmp_path / "corpora", name=name
    )


def decoded(c: Corpus, split: str) -> str:
    return c.tokenizer().decode(int(t) for t in c.tokens(split))


def test_single_document_is_split_by_characters_like_nanogpt(tmp_path, text_file):
    c, reused = prepare(tmp_path, text_file, "char")
    text = text_file.read_text()
    cut = len(text) - round(len(text) * 0.1)
    assert not reused
    assert c.characters("train") == cut and c.characters("val") == len(text) - cut
    assert decoded(c, "train") == text[:cut]
    # The held-out tail is one whole document: it ends with the end-of-text id.
    assert decoded(c, "val") == text[cut:]
    assert int(c.tokens("val")[-1]) == c.tokenizer().eot_id


def test_hub_like_folder_uses_its_validation_split(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    pd.DataFrame({"text": [sample_text(2000, seed) for seed in range(10)], "id": range(10)}).to_parquet(
        repo / "data" / "train-00000.parquet"
    )
    pd.DataFrame({"text": [sample_text(1500, 99)], "id": [0]}).to_parquet(repo / "data" / "validation-00000.parquet")
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: validation\n    path: data/validation-*\n---\n# A local dataset repo\n"
    )
    c, _ = prepare(tmp_path, repo, "bpe")
    assert c.meta["validation_from"] == "split validation"
    assert c.meta["splits"]["train"]["documents"] == 10
    assert decoded(c, "val") == sample_text(1500, 99)
    assert c.meta["source"]["text_column"] == "text"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_json_and_csv_files_with_a_named_column(tmp_path, suffix):
    docs = [sample_text(800, seed) for seed in range(20)]
    frame = pd.DataFrame({"body": docs, "n": range(20)})
    path = tmp_path / f"docs{suffix}"
    frame.to_json(path, orient="records", lines=True) if suffix == ".jsonl" else frame.to_csv(path, index=False)
    c, _ = prepare(tmp_path, path, "unigram")
    assert c.meta["source"]["text_column"] == "body"  # the only string column
    assert c.meta["splits"]["train"]["documents"] + c.meta["splits"]["val"]["documents"] == 20


def test_folder_of_text_files_is_one_document_per_file(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.txt").write_text(sample_text(3000, i))
    c, _ = prepare(tmp_path, folder, "char")
    assert c.meta["splits"]["train"]["documents"] + c.meta["splits"]["val"]["documents"] == 5


@settings(max_examples=40, deadline=None)
# The characters the tokenizer escapes are drawn often, not left to chance.
# Surrogates are not text a UTF-8 file can hold; what becomes of them is the next test's subject.
@given(
    text=st.text(
        st.characters(exclude_categories=["Cs"]) | st.sampled_from("\u2581\uf8ff\uf8fe"), min_size=0, max_size=200
    )
)
def test_any_unicode_round_trips(shared_tokenizers, text):
    for tok in shared_tokenizers:
        assert tok.decode(tok.encode(text)) == text
        stream = tok.stream_decoder()
        assert "".join(stream.push(i) for i in tok.encode(text)) + stream.flush() == text


def test_lone_surrogates_encode_as_the_replacement_character(shared_tokenizers):
    # What Python makes of invalid UTF-8 bytes in a command-line prompt (surrogateescape), and of "\ud800" in JSON.
    for tok in shared_tokenizers:
        assert tok.decode(tok.encode("abc\udcff \ud800")) == "abc\ufffd \ufffd"


@pytest.mark.parametrize(
    "text", ["\u2581", "a \u2581b\u2581\u2581 c", "\uf8ff", "\uf8ff\u2581\uf8fe\uf8ff\uf8ff", "\uf8fe \uf8ff"]
)
def test_sentencepiece_space_symbol_and_the_escape_round_trip(shared_tokenizers, text):
    # sentencepiece writes spaces as U+2581 and decodes every U+2581 to a space: the text is escaped.
    for tok in shared_tokenizers:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        stream = tok.stream_decoder()
        assert "".join(stream.push(i) for i in ids) + stream.flush() == text


def test_tokenizer_trained_on_the_space_symbol_keeps_it(tmp_path):
    text = [sample_text(5000) + " \u2581\u2581 word\u2581word " * 50]
    tok = tokenizer.Tokenizer(tokenizer.train(text, "bpe", 300))
    assert tok.decode(tok.encode(text[0])) == text[0]


@pytest.fixture(scope="module")
def shared_tokenizers():
    text = [sample_text(20_000)]
    return [
        tokenizer.Tokenizer(tokenizer.train(text, kind, size))
        for kind, size in (("unigram", 400), ("bpe", 400), ("char", 4096))
    ]


def test_emoji_and_other_scripts_encode_through_byte_fallback(shared_tokenizers):
    for tok in shared_tokenizers:
        text = "Grüße 😀 — 中文 ok\n\ttab"
        ids = tok.encode(text)
        assert tok.unk_id not in ids and tok.decode(ids) == text


def test_token_dtype_follows_the_vocabulary(tmp_path, text_file):
    c, _ = prepare(tmp_path, text_file, "char")
    assert c.dtype == np.uint16
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32


def test_rerun_reuses_and_force_rebuilds(tmp_path, text_file):
    first, reused = prepare(tmp_path, text_file, "char")
    assert not reused
    _, reused = prepare(tmp_path, text_file, "char")
    assert reused
    with pytest.raises(CorpusError, match="force"):
        prepare(tmp_path, text_file, "unigram")
    rebuilt, reused = preparing.prepare(
        SourceSpec(dataset=str(text_file)), TokenizerSpec("unigram"), root=tmp_path / "corpora", name="c", force=True
    )
    assert not reused and rebuilt.meta["tokenizer"]["type"] == "unigram"


def test_interrupted_prepare_leaves_nothing(tmp_path, text_file, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(building, "encode_into", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path, text_file, "char")
    assert not (tmp_path / "corpora").exists()  # created by this prepare, removed with all it held


def test_default_vocabulary_shrinks_to_fit_a_small_corpus(tmp_path, text_file):
    c, _ = prepare(tmp_path, text_file, "unigram")
    assert 256 < c.vocab_size < 1024


def test_too_large_vocabulary_names_the_largest_that_works(tmp_path, text_file):
    with pytest.raises(CorpusError, match=r"largest that works is \d+; pass vocab_size \d+"):
        prepare(tmp_path, text_file, "unigram", vocab_size=50_000)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        prepare(tmp_path, tmp_path / "missing.txt")
    frame = pd.DataFrame({"title": ["a", "b"], "body": ["x y", "z"]})
    frame.to_parquet(tmp_path / "two.parquet")
    with pytest.raises(CorpusError, match="text_column, one of: title, body"):
        prepare(tmp_path, tmp_path / "two.parquet")
    with pytest.raises(CorpusError, match="no column 'txt'; its columns are: title, body"):
        prepare(tmp_path, tmp_path / "two.parquet", text_column="txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="no text"):
        prepare(tmp_path, tmp_path / "empty.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00abc\x80")
    with pytest.raises(CorpusError, match="not UTF-8"):
        prepare(tmp_path, tmp_path / "binary.txt")
    script = tmp_path / "scripted"
    script.mkdir()
    (script / "scripted.py").write_text("import datasets\n")
    with pytest.raises(CorpusError, match="script-based.*refs/convert/parquet"):
        prepare(tmp_path, script)
    assert not any((tmp_path / "corpora").glob("*/meta.json"))


def test_unreachable_hub_fails_fast_with_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test: going offline sets it
    started = time.monotonic()
    with pytest.raises(CorpusError, match="cannot reach the Hugging Face hub.*dataset pydocs"):
        prepare(tmp_path, "someone/some-dataset")
    assert time.monotonic() - started < 15


def test_truncated_token_file_is_reported(tmp_path, text_file):
    c, _ = prepare(tmp_path, text_file, "char")
    with open(c.path / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CorpusError, match="train.bin is 100 bytes.*--force"):
        Corpus.open(c.path).tokens("train")
    (c.path / "meta.json").unlink()
    with pytest.raises(CorpusError, match="no meta.json"):
        Corpus.open(c.path)


def test_meta_records_what_bits_per_character_needs(tmp_path, text_file):
    c, _ = prepare(tmp_path, text_file, "unigram")
    meta = json.loads((c.path / "meta.json").read_text())
    for split in ("train", "val"):
        assert set(meta["splits"][split]) == {"documents", "characters", "tokens", "unknown_bytes"}
        assert meta["splits"][split]["unknown_bytes"] == 0  # byte pieces spell everything
    assert meta["tokenizer"]["vocab_size"] == c.tokenizer().vocab_size and meta["rnngen_version"]


def test_streaming_holds_out_the_last_documents_and_matches_the_full_read(tmp_path):
    docs = [sample_text(1000, seed) for seed in range(30)]
    path = tmp_path / "docs.jsonl"
    pd.DataFrame({"text": docs}).to_json(path, orient="records", lines=True)
    streamed, _ = prepare(tmp_path, path, "char", streaming=True, name="streamed")
    assert streamed.meta["validation_from"] == "last 10% of the documents"
    assert streamed.meta["splits"]["val"]["documents"] == 3
    assert decoded(streamed, "val") == "".join(docs[-3:])  # the end-of-text ids decode to nothing
    limited, _ = prepare(tmp_path, path, "char", streaming=True, max_chars=5000, name="limited")
    assert limited.characters("train") + limited.characters("val") == 5000


def test_unwritable_corpora_folder_is_reported(tmp_path, text_file):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CorpusError, match="cannot write to .*folder as corpora"):
        preparing.prepare(SourceSpec(dataset=str(text_file)), TokenizerSpec("char"), root=blocker / "corpora")


def test_a_copied_corpus_is_named_after_its_folder(tmp_path, text_file):
    import shutil

    from rnngen.data.reading import list_corpora

    original, _ = prepare(tmp_path, text_file, "char", name="shk")
    shutil.copytree(original.path, tmp_path / "corpora" / "shkcopy")
    assert [meta["name"] for meta in list_corpora(tmp_path / "corpora")] == ["shk", "shkcopy"]
    copy = Corpus.find(tmp_path / "corpora", "shkcopy")
    assert copy.name == "shkcopy" and copy.identity()["name"] == "shkcopy"
    claim = copy.hold()  # the name it is read under is no sign of a rebuild
    if claim is not None:
        claim.release()


def test_default_vocabulary_grows_to_hold_every_character_of_a_small_text(tmp_path):
    syllables = [chr(0xAC00 + i) for i in range(1500)]
    rng = random.Random(0)
    path = tmp_path / "korean.txt"
    path.write_text("\n".join(" ".join(rng.sample(syllables, len(syllables))) for _ in range(20)))
    c, _ = prepare(tmp_path, path)
    tok = c.tokenizer()
    assert c.vocab_size > 1024 and all(not tok.sp.is_byte(i) for i in tok.encode("".join(syllables)))
