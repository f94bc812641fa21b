"""`rnngen prepare` options: the word tokenizer and encoding with another corpus's or run's tokenizer."""

from __future__ import annotations

import json

from conftest import sample_text

from rnngen.data.preparing import prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec


def test_word_tokenizer_counts_the_real_characters_and_says_it_is_lossy(tmp_path, text_file):
    c, _ = prepare(SourceSpec(dataset=str(text_file)), TokenizerSpec("word"), root=tmp_path / "c", name="words")
    tok = c.tokenizer()
    text = text_file.read_text()
    # Bits per character divide by the characters of the text itself, not of its decoding.
    assert c.characters("train") + c.characters("val") == len(text)
    assert c.meta["tokenizer"]["type"] == "word" and c.meta["tokenizer"]["lossless"] is False
    ids = tok.encode("The model reads.\nThe zzqxv model")
    assert tok.unk_id in ids and tok.decode(ids) == "The model reads.\nThe \u2047  model"
    # Words next to a newline are words of the vocabulary, not unknown.
    assert tok.encode("reads.\nThe")[-1] != tok.unk_id


def test_a_run_of_text_without_spaces_is_an_unknown_word_not_a_broken_tokenizer(tmp_path, text_file):
    # sentencepiece cannot load a model holding a piece of about 8 kB: such a "word" must not become one.
    text = tmp_path / "long-word.txt"
    text.write_text(text_file.read_text() + "\n" + "ab" * 5000 + "\n" + text_file.read_text())
    c, _ = prepare(SourceSpec(dataset=str(text)), TokenizerSpec("word"), root=tmp_path / "c", name="words")
    assert c.tokenizer().encode("ab" * 5000) == [c.tokenizer().unk_id]


def test_tokenizer_from_a_corpus_or_a_run_is_reused_as_is(tmp_path, run_cli, char_corpus, trained):
    more = tmp_path / "more.txt"
    more.write_text(sample_text(8000, seed=5))
    result = run_cli("prepare", "--dataset", str(more), "--tokenizer-from", "notes", "--name", "more", "--plain")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "corpora" / "more" / "meta.json").read_text())
    notes = json.loads((tmp_path / "corpora" / "notes" / "meta.json").read_text())
    assert meta["tokenizer"]["sha256"] == notes["tokenizer"]["sha256"] and meta["tokenizer"]["type"] == "char"
    assert (tmp_path / "corpora" / "more" / "tokenizer.model").read_bytes() == (
        tmp_path / "corpora" / "notes" / "tokenizer.model"
    ).read_bytes()
    result = run_cli("prepare", "--dataset", str(more), "--tokenizer-from", trained, "--name", "from-run", "--plain")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "corpora" / "from-run" / "meta.json").read_text())
    assert meta["tokenizer"]["sha256"] == notes["tokenizer"]["sha256"]
    result = run_cli("prepare", "--dataset", str(more), "--tokenizer-from", "nothing", "--plain")
    assert result.exit_code == 1 and "no tokenizer.model file, corpus" in result.output
    for extra, named in ((("--tokenizer", "char"), "--tokenizer"), (("--vocab-size", "500"), "--vocab-size")):
        result = run_cli("prepare", "--dataset", str(more), "--tokenizer-from", "notes", "--name", "x", *extra)
        assert result.exit_code == 1 and not (tmp_path / "corpora" / "x").exists()
        assert result.output.strip() == (
            f"error: --tokenizer-from encodes with that tokenizer as it is, its type and size included: drop {named}"
        )
    assert meta["request"]["tokenizer"] == {
        "from_path": str(tmp_path / "checkpoints" / trained / "tokenizer.model"),
        "sha256": notes["tokenizer"]["sha256"],
    }
