"""Reading prepared corpora: `Corpus` opens a folder that `prepare` made, `list_corpora` lists them, and a
checkpoint records its corpus (`Corpus.identity`) to find it again (`corpus_of`).

A prepared corpus folder holds `tokenizer.model`, `train.bin` and `val.bin` (flat token arrays,
uint16 when the vocabulary fits, else uint32, read back with `np.memmap` so memory does not grow
with the corpus) and `meta.json` (source, tokenizer, documents/characters/tokens per split).
Characters are counted per split so that bits per character can be computed for any tokenizer.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnngen.data.tokenizer import Tokenizer
from rnngen.errors import CorpusError, param
from rnngen.store.lock import Lock
from rnngen.store.names import check_name, is_valid_name
from rnngen.store.runs import require_same_tokenizer

META_FORMAT = 2
IN_USE = ".lock"  # in a corpus folder: claimed by the runs that train on it and by a prepare that replaces it
# Passes over a whole split (the id check, the unigram counts) read it this many tokens at a time.
BLOCK_TOKENS = 1 << 22


class Corpus:
    """A prepared corpus folder: meta, tokenizer and memory-mapped token arrays; its name is the folder's."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = _named(meta, path)
        self.name = self.meta["name"]

    @classmethod
    def open(cls, path: Path) -> Corpus:
        """Open a corpus folder, checking that it is complete and that its tokenizer is the one in meta.json."""
        path = Path(path)
        meta_path = path / "meta.json"
        rebuild = "rebuild it with `rnngen prepare ... --force`"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise CorpusError(f"{path} has no meta.json: {rebuild}") from None
        except (OSError, ValueError) as exc:
            raise CorpusError(f"{meta_path} is unreadable ({exc}): {rebuild}") from exc
        if isinstance(meta, dict) and meta.get("format") != META_FORMAT:
            raise CorpusError(
                f"{path} is corpus format {meta.get('format')}; this rnngen reads format {META_FORMAT}: {rebuild}"
            )
        if not _complete(meta):
            raise CorpusError(f"{meta_path} lacks the name, tokenizer or splits of the corpus: {rebuild}")
        corpus = cls(path, meta)
        tok = corpus.tokenizer()  # a damaged tokenizer fails here, not after hours of training
        if tok.sha256 != meta["tokenizer"]["sha256"] or tok.vocab_size != corpus.vocab_size:
            raise CorpusError(
                f"{path / 'tokenizer.model'} is not the tokenizer this corpus was encoded with: {rebuild}"
            )
        for split in ("train", "val"):
            corpus._check_ids(split)
        return corpus

    def _check_ids(self, split: str) -> None:
        """Refuse a split whose token file is the right size but holds an id past the vocabulary (a bit flip, a
        bad copy): caught here in one pass over the file, not as an index error deep in the first step."""
        top = max((int(block.max()) for block in self.blocks(split)), default=0)
        if top >= self.vocab_size:
            raise CorpusError(
                f"{self.path / f'{split}.bin'} is damaged: it holds token id {top}, beyond the vocabulary of "
                f"{self.vocab_size}: rebuild the corpus with `rnngen prepare ... --force`"
            )

    @classmethod
    def find(cls, root: Path, name: str) -> Corpus:
        """Open `root/<name>`, with an error that lists the prepared corpora when it is missing."""
        path = Path(root) / check_name(name)
        if not path.is_dir():
            known = ", ".join(meta["name"] for meta in list_corpora(root)) or "none yet"
            raise CorpusError(
                f"no corpus named {name!r} in {root} (prepared: {known}): "
                f"run `rnngen prepare --dataset SOURCE --name {name}`"
            )
        return cls.open(path)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["tokenizer"]["vocab_size"])

    def characters(self, split: str) -> int:
        return int(self.meta["splits"][split]["characters"])

    def unknown_bytes(self, split: str) -> int:
        """UTF-8 bytes of `split` in unknown pieces (the word tokenizer's; 0 for a tokenizer that spells everything)."""
        return int(self.meta["splits"][split]["unknown_bytes"])

    def tokens(self, split: str) -> np.ndarray:
        """The split's tokens, memory-mapped (nothing is read until used)."""
        path = self.path / f"{split}.bin"
        expected = int(self.meta["splits"][split]["tokens"])
        size = path.stat().st_size if path.exists() else -1
        if size != expected * self.dtype.itemsize:
            state = "missing" if size < 0 else f"{size} bytes, expected {expected * self.dtype.itemsize}"
            raise CorpusError(f"{path} is {state}: rebuild the corpus with `rnngen prepare ... --force`")
        return np.memmap(path, dtype=self.dtype, mode="r", shape=(expected,))

    def blocks(self, split: str) -> Iterator[np.ndarray]:
        """The split's tokens in blocks of BLOCK_TOKENS, read from the file: a pass over the whole split that holds
        one block at a time (reading through the memory map would keep every page read resident)."""
        tokens = len(self.tokens(split))  # checks the file's size
        with open(self.path / f"{split}.bin", "rb") as file:
            for _ in range(0, tokens, BLOCK_TOKENS):
                yield np.fromfile(file, dtype=self.dtype, count=BLOCK_TOKENS)

    def token_counts(self, split: str = "train") -> np.ndarray:
        """How often each id of the vocabulary occurs in `split`, counted block by block."""
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for block in self.blocks(split):
            counts += np.bincount(block, minlength=self.vocab_size)
        return counts

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.load(self.path / "tokenizer.model")

    def hold(self) -> Lock | None:
        """The shared claim of a run that trains on this corpus (`claim_corpus`), held until `release()`; refused
        when a prepare is replacing it, or replaced it since it was opened."""
        claim = claim_corpus(self.path, replacing=False)
        try:
            rebuilt = _named(json.loads((self.path / "meta.json").read_text()), self.path) != self.meta
        except (OSError, ValueError, TypeError):
            rebuilt = True
        if rebuilt:
            if claim is not None:
                claim.release()
            raise CorpusError(f"corpus {self.name} was rebuilt by rnngen prepare as this run started: start it again")
        return claim

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records of its corpus: enough to find it again (`corpus_of`) and to check the tokenizer."""
        splits = self.meta["splits"]
        source = self.meta["source"]
        return {
            "name": self.name,
            "path": str(self.path),
            "dataset": source["dataset"],
            "documents": source["documents"],
            "tokenizer": self.meta["tokenizer"],
            "train_tokens": splits["train"]["tokens"],
            "train_documents": splits["train"]["documents"],
            "train_characters": splits["train"]["characters"],
            "val_tokens": splits["val"]["tokens"],
            "val_characters": splits["val"]["characters"],
            "fingerprint": self.meta["fingerprint"],
        }


def claim_corpus(path: Path, *, replacing: bool) -> Lock | None:
    """Runs that train on the corpus at `path` hold a shared claim on it, and a prepare that replaces it an
    exclusive one: neither starts while the other holds it (a prepare must not pull a corpus from under a run).
    None where the folder is read-only: no claim can be written there."""
    name = Path(path).name
    if replacing:
        busy = (
            f"corpus {name} is in use by rnngen train (process {{pid}}): wait for the run to end, or prepare "
            f"under another {param('name')}"
        )
    else:
        busy = f"corpus {name} is being rebuilt by rnngen prepare (process {{pid}}) right now: wait for it to finish"
    try:
        return Lock(Path(path) / IN_USE, busy, CorpusError, shared=not replacing)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return None
        raise


def _complete(meta: Any) -> bool:
    """Whether a meta.json holds what opening and listing a corpus read, with a valid name."""
    try:
        return (
            isinstance(meta, dict)
            and is_valid_name(meta["name"])
            and isinstance(meta["source"], dict)
            and isinstance(meta["request"], dict)
            and int(meta["tokenizer"]["vocab_size"]) > 0
            and isinstance(meta["tokenizer"]["type"], str)
            and isinstance(meta["tokenizer"]["sha256"], str)
            and isinstance(meta["fingerprint"], str)
            and all(
                int(meta["splits"][split][key]) >= 0
                for split in ("train", "val")
                for key in ("documents", "characters", "tokens", "unknown_bytes")
            )
        )
    except (KeyError, TypeError, ValueError):
        return False


def _named(meta: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A corpus's meta with the name of its folder: the name a user passes as `corpus`, so a copied or renamed
    corpus is listed and recorded under its own name, not the one meta.json was written with."""
    return meta | {"name": Path(folder).name}


def list_corpora(root: Path) -> list[dict[str, Any]]:
    """The meta of every prepared corpus under `root`, by name; folders with a damaged meta.json, or a name no
    command takes, are left out."""
    metas = []
    for meta_path in sorted(Path(root).glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if _complete(meta) and is_valid_name(meta_path.parent.name):
            metas.append(_named(meta, meta_path.parent) | {"path": str(meta_path.parent)})
    return metas


def same_data(identity: dict[str, Any], corpus: Corpus) -> bool:
    """Whether `corpus` holds the tokens that a checkpoint recorded (`identity`): the same fingerprint."""
    return identity["fingerprint"] == corpus.meta["fingerprint"]


def corpus_of(identity: dict[str, Any], root: Path) -> Corpus:
    """The corpus a checkpoint was trained on (`Checkpoint.corpus`): at its recorded path, else by name under `root`."""
    path = Path(identity["path"])
    if (path / "meta.json").exists():
        corpus = Corpus.open(path)
    else:
        # The name comes from a file that may have been edited or sent by someone else.
        corpus = Corpus.find(root, check_name(identity.get("name"), "the checkpoint's corpus"))
    require_same_tokenizer(
        f"corpus {corpus.path}",
        corpus.meta["tokenizer"],
        identity["tokenizer"],
        "use the corpus the run was trained on",
    )
    return corpus
