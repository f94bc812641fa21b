"""A thin wrapper over sentencepiece: train from an iterator, load, encode, decode, stream-decode.

Settings are chosen so that `decode(encode(text)) == text` for any text (except with the `word`
model, whose unknown words become the unknown id): no normalisation, spaces
kept as they are, no dummy prefix, byte fallback for characters the vocabulary lacks, and the
newline as a piece of its own (sentencepiece reads its training text line by line). Documents are
separated by the end-of-text id, so the state after it is the start-of-document state.

sentencepiece writes spaces as U+2581 (▁) inside pieces and decodes every U+2581 back to a space, so a
real U+2581 in the text would come back as a space. The text is escaped before sentencepiece sees it
(U+2581 -> ESCAPE + U+F8FE, ESCAPE -> ESCAPE ESCAPE, both private-use characters) and unescaped after
decoding; `encode`, `decode`, `train` and the stream decoder all go through it.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sentencepiece as spm

from rnngen.errors import CorpusError, param
from rnngen.store.runs import require_same_tokenizer

TOKENIZER_TYPES = ("unigram", "bpe", "char", "word")
# The word model has no byte fallback (sentencepiece would spell an unknown word's leading space as the
# bytes of U+2581): a word outside its vocabulary becomes the unknown id, decoded as " ⁇ ".
LOSSY_TYPES = ("word",)
# sentencepiece skips training sentences longer than this many bytes; longer lines are cut.
MAX_SENTENCE_BYTES = 16384
# The word model learns any run without a space as a piece, and sentencepiece refuses to load a model that holds a
# piece of about 8 kB: runs longer than this are left out of its training text (they encode as unknown).
MAX_WORD_CHARS = 1024
_LONG_WORD = re.compile(f"[^ ]{{{MAX_WORD_CHARS + 1},}}")
SPACE_META = "\u2581"
ESCAPE = "\uf8ff"
ESCAPED_META = "\uf8fe"
_UNESCAPE = re.compile(ESCAPE + "(.)", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_safe(text: str) -> str:
    """`text` with each lone surrogate (what Python makes of a byte that is not UTF-8, in a command-line
    argument or a file read with surrogateescape) replaced by U+FFFD, as a UTF-8 decoder replaces the byte."""
    try:
        text.encode()  # several times faster than the search below, which only text that fails it needs
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def escape(text: str) -> str:
    """The text as sentencepiece must see it so that U+2581 survives a round trip. A lone surrogate (what
    Python makes of invalid UTF-8 in a command-line prompt or a file read with surrogateescape) has no
    UTF-8 form, so sentencepiece cannot take it: it becomes U+FFFD, as a UTF-8 decoder would make it."""
    text = utf8_safe(text)
    if ESCAPE in text:
        text = text.replace(ESCAPE, ESCAPE + ESCAPE)
    return text.replace(SPACE_META, ESCAPE + ESCAPED_META) if SPACE_META in text else text


def _unescaped(match: re.Match) -> str:
    follower = match.group(1)
    if follower == ESCAPE:
        return ESCAPE
    # An escape before anything else can only come from a model's sampling: keep it as it is.
    return SPACE_META if follower == ESCAPED_META else match.group(0)


def unescape(text: str) -> str:
    """The inverse of `escape`."""
    return _UNESCAPE.sub(_unescaped, text) if ESCAPE in text else text


class VocabTooLarge(CorpusError):
    """The requested vocabulary is larger than the corpus can fill."""

    def __init__(self, requested: int, largest: int):
        super().__init__(
            f"{param('vocab_size')} {requested} is too large for this corpus: the largest that works is "
            f"{largest}; pass {param('vocab_size')} {largest} or less"
        )
        self.largest = largest


class VocabTooSmall(CorpusError):
    """The requested vocabulary cannot hold every character of the corpus (with the bytes and specials)."""

    def __init__(self, requested: int, smallest: int):
        super().__init__(
            f"{param('vocab_size')} {requested} is too small: this corpus needs at least "
            f"{smallest} pieces (its characters, 256 bytes and the specials)"
        )
        self.smallest = smallest


def _sentences(texts: Iterable[str], kind: str) -> Iterator[str]:
    for text in texts:
        for line in escape(text).split("\n"):
            if kind == "word":
                line = _LONG_WORD.sub("", line)
            while len(line.encode()) > MAX_SENTENCE_BYTES:
                yield line[: MAX_SENTENCE_BYTES // 4]
                line = line[MAX_SENTENCE_BYTES // 4 :]
            if line:
                yield line


def train(texts: Iterable[str], kind: str, vocab_size: int, threads: int = 1) -> bytes:
    """Train a tokenizer on `texts` and return the serialized model.

    For `char` the vocabulary is every character seen (plus bytes and specials) and `vocab_size`
    is only an upper bound.
    """
    if kind not in TOKENIZER_TYPES:
        raise CorpusError(f"unknown tokenizer {kind!r}: choose one of {', '.join(TOKENIZER_TYPES)}")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_sentences(texts, kind),
            model_writer=model,
            model_type=kind,
            vocab_size=vocab_size,
            hard_vocab_limit=kind not in ("char", "word"),
            byte_fallback=kind not in LOSSY_TYPES,
            character_coverage=1.0,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            user_defined_symbols=["\n"],
            split_digits=True,
            allow_whitespace_only_pieces=True,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=threads,
            minloglevel=2,
            input_sentence_size=0,
        )
    except RuntimeError as exc:
        largest = re.search(r"value <= (\d+)", str(exc))
        if largest:
            raise VocabTooLarge(vocab_size, int(largest.group(1))) from exc
        smallest = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
        if smallest:
            raise VocabTooSmall(vocab_size, int(smallest.group(1))) from exc
        if "no sentences" in str(exc).lower() or "empty" in str(exc).lower():
            raise CorpusError("the corpus has no text to train a tokenizer on") from exc
        raise
    return model.getvalue()


class Tokenizer:
    """A loaded sentencepiece model."""

    def __init__(self, model: bytes, source: str = "tokenizer.model"):
        self.proto = model
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model)
        except RuntimeError as exc:
            raise CorpusError(f"{source} is not a sentencepiece model: {exc}") from exc
        self.vocab_size = self.sp.get_piece_size()
        self.eot_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        # Without byte pieces (the word model) text outside the vocabulary is lost: `decode(encode(x))` may
        # differ from x. Such a model splits only at spaces, so lines are encoded one by one around the
        # newline piece, or the words next to a newline would be unknown.
        self.lossless = any(self.sp.is_byte(i) for i in range(self.vocab_size))
        self._newline_id = self.sp.piece_to_id("\n")
        # Bytes of every piece, so that streaming decode can join byte-fallback pieces into characters.
        self._piece_bytes = [self._bytes_of(i) for i in range(self.vocab_size)]

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read `tokenizer.model` from a corpus or run folder."""
        try:
            return cls(Path(path).read_bytes(), str(path))
        except OSError as exc:
            raise CorpusError(f"cannot read tokenizer {path}: {exc.strerror}") from exc

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.proto).hexdigest()

    @property
    def piece_bytes(self) -> list[bytes]:
        """The UTF-8 bytes each piece stands for, by id (a byte piece its byte, a control piece none): what a
        decoder outside sentencepiece joins into text."""
        return self._piece_bytes

    def _bytes_of(self, index: int) -> bytes:
        if self.sp.is_byte(index):
            return bytes([int(self.sp.id_to_piece(index)[1:-1], 16)])
        if self.sp.is_control(index):
            return b""
        if self.sp.is_unknown(index):
            return " \u2047 ".encode()
        return self.sp.id_to_piece(index).replace("\u2581", " ").encode()

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str], threads: int = 1) -> list[list[int]]:
        """Encode many texts at once in sentencepiece's C++ thread pool."""
        if self.lossless:
            return self.sp.encode([escape(text) for text in texts], num_threads=threads)
        lines = [text.split("\n") for text in texts]
        encoded = iter(self.sp.encode([escape(line) for parts in lines for line in parts], num_threads=threads))
        batch = []
        for parts in lines:
            ids: list[int] = []
            for number in range(len(parts)):
                if number:
                    ids.append(self._newline_id)
                ids.extend(next(encoded))
            batch.append(ids)
        return batch

    def unknown_bytes(self, text: str, ids: list[int]) -> int:
        """How many UTF-8 bytes of `text` (encoded as `ids`) fall in unknown pieces: 0 with byte pieces;
        with the word model, each run of words outside the vocabulary is one unknown piece, whatever its
        length. The pieces cover the text exactly, so the unknown ones hold what the others do not."""
        if self.lossless or self.unk_id not in ids:
            return 0
        known = sum(len(self._piece_bytes[i]) for i in ids if i != self.unk_id)
        return max(0, len(utf8_safe(text).encode()) - known)

    def decode(self, ids: Iterable[int]) -> str:
        return unescape(self.sp.decode(list(ids)))

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self._piece_bytes)


class StreamDecoder:
    """Turns ids into text one at a time; a character split over byte pieces appears when complete."""

    def __init__(self, piece_bytes: list[bytes]):
        self._piece_bytes = piece_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # an escape character whose follower has not arrived yet

    def _unescape(self, text: str) -> str:
        text = self._held + text
        # An odd run of escapes at the end leaves the last one waiting for its follower.
        trailing = len(text) - len(text.rstrip(ESCAPE))
        self._held = ESCAPE if trailing % 2 else ""
        return unescape(text[: len(text) - len(self._held)])

    def push(self, token: int) -> str:
        return self._unescape(self._utf8.decode(self._piece_bytes[token]))

    def flush(self) -> str:
        text = self._unescape(self._utf8.decode(b"", final=True)) + self._held
        self._held = ""
        return text


def load_checked(path: Path, corpus: dict[str, Any], vocab_size: int) -> Tokenizer:
    """The tokenizer at `path` (a run's tokenizer.model), refused unless it is the one a checkpoint was trained with:
    the tokenizer its `corpus` record names, and `vocab_size` pieces, as its model has."""
    tok = Tokenizer.load(path)
    require_same_tokenizer(
        str(path),
        {"sha256": tok.sha256, "vocab_size": tok.vocab_size},
        {"sha256": corpus["tokenizer"]["sha256"], "vocab_size": vocab_size},
        "copy the tokenizer.model of the corpus the run was trained on",
    )
    return tok
