"""Prepared corpora: `prepare()` turns a source into `corpora/<name>/`, `Corpus` opens one.

A prepared corpus folder holds `tokenizer.model`, `train.bin` and `val.bin` (flat token arrays,
uint16 when the vocabulary fits, else uint32, read back with `np.memmap` so memory does not grow
with the corpus) and `meta.json` (source, tokenizer, documents/characters/tokens per split).
Characters are counted per split so that bits per character can be computed for any tokenizer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnngen import __version__
from rnngen.store.atomic import write_json_atomic
from rnngen.data import sources, tokenizer
from rnngen.store.names import MAX_NAME_CHARS, check_name, is_valid_name
from rnngen.data.sources import SourceSpec
from rnngen.errors import CorpusError
from rnngen.store.lock import Lock, alive
from rnngen.store.runs import require_same_tokenizer

META_FORMAT = 1
TEMP_PREFIX = ".tmp-"
# Errors of writing that a user fixes by freeing space or choosing another folder.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)
# The tokenizer is trained on at most this many characters, taken evenly across the train split in
# pieces of SAMPLE_PIECE_CHARS (from its start when the split's size is not known: streaming).
TOKENIZER_SAMPLE_CHARS = 4_000_000
SAMPLE_PIECE_CHARS = 10_000
# Texts are encoded in batches of about BATCH_CHARS characters, spread over sentencepiece's threads.
# Documents longer than CHUNK_CHARS are cut at a newline first, so that one long document is spread
# too (the newline is a piece of its own: cutting there does not change the tokens; only a single
# line longer than CHUNK_CHARS is cut inside the line).
BATCH_CHARS = 1_000_000
CHUNK_CHARS = 65_536

# Progress callback: (stage, completed, total or None). Stages: load, tokenizer, encode, write.
ProgressFn = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer `prepare` trains; `vocab_size` None sizes it to the corpus. With `from_path` (a
    tokenizer.model file) none is trained: the corpus is encoded with that one, so vocabularies match."""

    kind: str = "unigram"
    vocab_size: int | None = None
    from_path: str | None = None


def default_vocab_size(kind: str, train_chars: int | None) -> int:
    """A vocabulary that the corpus can fill: larger corpora get more pieces."""
    if kind == "char":
        return 4096  # an upper bound only: the vocabulary is every character seen
    if kind == "word":
        return 32768 if train_chars is None or train_chars >= 20_000_000 else 8192  # at most the words seen
    if train_chars is None:
        return 8192
    for limit, size in ((2_000_000, 1024), (20_000_000, 4096), (200_000_000, 8192)):
        if train_chars < limit:
            return size
    return 16384


def name_for(dataset: str, config: str | None) -> str:
    """A folder name for a dataset: `Salesforce/wikitext` + `wikitext-2-raw-v1` -> `wikitext-2-raw-v1`."""
    if sources.is_local(dataset):
        base = Path(dataset).expanduser().resolve().stem
    else:
        base = dataset.rstrip("/").split("/")[-1]
    if config and config not in base:
        base = f"{base}-{config}" if not config.startswith(base) else config
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._").lower()[:MAX_NAME_CHARS].rstrip("-._") or "corpus"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32: half the disk and memory for common vocabularies."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def _chunks(text: str) -> Iterator[str]:
    while len(text) > CHUNK_CHARS:
        cut = text.rfind("\n", 0, CHUNK_CHARS) + 1 or CHUNK_CHARS
        yield text[:cut]
        text = text[cut:]
    yield text


class _TokenFile:
    """Appends token ids to a flat binary file."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path = path
        self.dtype = dtype
        self.file = open(path, "wb")
        self.tokens = 0

    def write(self, ids: list[int]) -> None:
        np.asarray(ids, dtype=self.dtype).tofile(self.file)
        self.tokens += len(ids)

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


@dataclass
class _SplitStats:
    documents: int = 0
    characters: int = 0
    tokens: int = 0


def _encode_into(pieces: Iterable[tuple[str, bool]], tok: tokenizer.Tokenizer, out: _TokenFile, stats: _SplitStats,
                 progress: ProgressFn, threads: int, boundaries: tuple[array, array] | None = None) -> None:
    """Encode (text, ends_document) pieces into `out`, the end-of-text id after each document.

    `boundaries` collects (tokens, characters) after each document, for a split made afterwards.
    """
    batch: list[str] = []
    ends: list[bool] = []
    size = 0

    def flush() -> None:
        nonlocal size
        ids: list[int] = []
        for piece_ids, text, end in zip(tok.encode_batch(batch, threads), batch, ends):
            ids.extend(piece_ids)
            stats.characters += len(text)
            if end:
                ids.append(tok.eot_id)
                stats.documents += 1
                if boundaries is not None:
                    boundaries[0].append(out.tokens + len(ids))
                    boundaries[1].append(stats.characters)
        out.write(ids)
        stats.tokens = out.tokens
        progress("encode", stats.characters, None)
        batch.clear()
        ends.clear()
        size = 0

    for text, end in pieces:
        parts = list(_chunks(text))
        for i, part in enumerate(parts):
            batch.append(part)
            ends.append(end and i == len(parts) - 1)
            size += len(part)
            if size >= BATCH_CHARS:
                flush()
    if batch:
        flush()


def _whole(docs: Iterable[str]) -> Iterator[tuple[str, bool]]:
    return ((doc, True) for doc in docs)


def _split_by_characters(docs: Iterable[str], total: int, val_fraction: float,
                         split: str) -> Iterator[tuple[str, bool]]:
    """The train (or val) part of `docs` when the last `val_fraction` of the characters is held out.

    The document that straddles the cut is cut by characters, as nanoGPT and char-rnn cut their
    single text, so a single-document corpus is split too.
    """
    cut = total - round(total * val_fraction)
    seen = 0
    for doc in docs:
        start, end = seen, seen + len(doc)
        seen = end
        if split == "train" and start < cut:
            yield (doc, True) if end <= cut else (doc[: cut - start], False)
        elif split == "val" and end > cut:
            yield doc[max(0, cut - start):], True
        if split == "train" and end >= cut:
            return


def _sample(docs: Iterable[str], limit: int, total: int | None) -> list[str]:
    """About `limit` characters of `docs`: every piece when they fit, else pieces spread evenly over
    the `total` characters, so that the tokenizer sees the end of the corpus as well as its start."""
    sample, size = [], 0
    if total is None or total <= limit:
        for doc in docs:
            sample.append(doc[: limit - size])
            size += len(sample[-1])
            if size >= limit:
                break
        return sample
    share, piece_index = limit / total, 0
    for doc in docs:
        for start in range(0, len(doc), SAMPLE_PIECE_CHARS):
            # Piece i is taken when floor((i + 1) * share) steps up: a share of the pieces, evenly spaced.
            if int((piece_index + 1) * share) > int(piece_index * share):
                sample.append(doc[start:start + SAMPLE_PIECE_CHARS])
            piece_index += 1
    return sample


def _train_tokenizer(sample: list[str], spec: TokenizerSpec, train_chars: int | None, threads: int) -> bytes:
    if spec.vocab_size is not None:
        return tokenizer.train(sample, spec.kind, spec.vocab_size, threads)
    try:
        return tokenizer.train(sample, spec.kind, default_vocab_size(spec.kind, train_chars), threads)
    except tokenizer.VocabTooLarge as exc:
        # A default size the corpus cannot fill: take the largest that works rather than fail.
        return tokenizer.train(sample, spec.kind, exc.largest, threads)


def _kind_of(model_path: Path) -> str:
    """The tokenizer type recorded next to a tokenizer.model (a corpus's meta.json, a run's config.json)."""
    folder = model_path.parent
    for file, keys in (("meta.json", ("tokenizer", "type")), ("config.json", ("corpus", "tokenizer", "type"))):
        try:
            value: Any = json.loads((folder / file).read_text())
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str):
            return value
    return "sentencepiece"


def _move_tail(train_path: Path, val_path: Path, start_token: int, itemsize: int) -> None:
    """Move the tokens from `start_token` on from train.bin into val.bin (streamed corpora)."""
    with open(train_path, "r+b") as src, open(val_path, "wb") as dst:
        src.seek(start_token * itemsize)
        shutil.copyfileobj(src, dst, 16 << 20)
        dst.flush()
        os.fsync(dst.fileno())
        src.truncate(start_token * itemsize)


def _tail_split(boundaries: tuple[array, array], val_fraction: float) -> tuple[int, int, int]:
    """(first val token, train documents, train characters) at the document boundary nearest the cut."""
    tokens, chars = boundaries
    if len(chars) < 2:
        raise CorpusError("a streamed corpus with a single document cannot be split: prepare it without --streaming, "
                          "or name a validation split with --val-split")
    cut = chars[-1] * (1 - val_fraction)
    index = min(range(len(chars) - 1), key=lambda i: abs(chars[i] - cut))
    return tokens[index], index + 1, chars[index]


def prepare(spec: SourceSpec, tok_spec: TokenizerSpec = TokenizerSpec(), *, root: Path, name: str | None = None,
            val_fraction: float = 0.1, force: bool = False, threads: int | None = None,
            progress: ProgressFn = lambda stage, done, total: None) -> tuple["Corpus", bool]:
    """Build `root/<name>/` from `spec` and return it with whether an existing one was reused.

    The corpus is built in a temporary folder of this process and renamed into place at the end, so
    an interrupted prepare leaves no half corpus behind; a lock per name refuses a second prepare of
    the same name while the first runs.
    """
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if spec.max_chars is not None and (not isinstance(spec.max_chars, int) or spec.max_chars < 1):
        raise CorpusError(f"--max-chars must be a whole number of characters of at least 1, got {spec.max_chars}")
    name = check_name(name if name is not None else name_for(spec.dataset, spec.config))
    target = Path(root) / name
    request = {"source": asdict(spec), "tokenizer": asdict(tok_spec), "val_fraction": val_fraction}
    if tok_spec.from_path:
        # Checked before anything is built; its hash tells a rerun with a changed tokenizer from a cached one.
        request["tokenizer"]["sha256"] = tokenizer.Tokenizer.load(Path(tok_spec.from_path)).sha256
    cleanup = _RemovedIfLeftEmpty(Path(root))
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        lock = _lock(Path(root), name)
    except OSError as exc:
        raise CorpusError(f"cannot write to {root}: {exc.strerror}: choose another folder with --corpora-dir") from exc
    with cleanup, lock, _sigterm_as_interrupt():
        _remove_stale_temporaries(Path(root))
        if target.exists() and not force and not outdated(target):
            existing = Corpus.open(target)
            previous = existing.meta.get("request")
            if previous == request:
                return existing, True
            if not isinstance(previous, dict) or "documents" not in previous.get("source", {}):
                raise CorpusError(f"{target} was prepared by an older rnngen, whose rules for documents and "
                                  f"validation differ: pass --force to rebuild it")
            raise CorpusError(f"{target} already holds a corpus prepared with other arguments: pass --force to "
                              f"rebuild it, or --name NAME to keep both")
        work = Path(root) / f"{TEMP_PREFIX}{name}-{os.getpid()}"
        try:
            shutil.rmtree(work, ignore_errors=True)  # left by a dead process whose id this one now has
            work.mkdir()
            _build_into(spec, tok_spec, work, target, name, request, val_fraction, threads, progress)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise CorpusError(f"cannot write corpus {name} in {root}: {exc.strerror}: free some space or choose "
                              f"another folder with --corpora-dir") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return Corpus.open(target), False


def _build_into(spec: SourceSpec, tok_spec: TokenizerSpec, work: Path, target: Path, name: str,
                request: dict[str, Any], val_fraction: float, threads: int | None, progress: ProgressFn) -> None:
    started = time.time()
    meta = _build(spec, tok_spec, work, val_fraction, threads or os.cpu_count() or 1, progress)
    shutil.rmtree(work / ".datasets-cache", ignore_errors=True)
    meta.update(name=name, request=request, seconds=round(time.time() - started, 2))
    write_json_atomic(work / "meta.json", meta)
    progress("write", 1, 1)
    if target.exists():
        old = target.parent / f"{TEMP_PREFIX}{name}-old-{os.getpid()}"
        target.rename(old)
        work.rename(target)
        shutil.rmtree(old)
    else:
        work.rename(target)


class _RemovedIfLeftEmpty:
    """On failure, removes `folder` if it did not exist before and is empty: a mistyped first prepare
    leaves no empty corpora folder behind (the lock, released first, takes its file with it)."""

    def __init__(self, folder: Path):
        self.folder, self.created = folder, not folder.exists()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, trace) -> None:
        if kind is not None and self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()


def _lock(root: Path, name: str) -> Lock:
    """Held while a prepare builds corpus `name`; the file is removed on release, so a prepare leaves nothing."""
    return Lock(root / f".lock-{name}", f"another `rnngen prepare` (process {{pid}}) is preparing corpus {name} "
                "right now: wait for it to finish (or prepare under another --name)", CorpusError)


def _remove_stale_temporaries(root: Path) -> None:
    """Remove the temporary folders of prepares whose process is gone (killed by SIGKILL, a crash, a reboot)."""
    for folder in root.glob(f"{TEMP_PREFIX}*"):
        match = re.fullmatch(rf"{re.escape(TEMP_PREFIX)}.+-(\d+)", folder.name)
        if match and folder.is_dir() and not alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a `kill`, a job scheduler) stops a prepare as Ctrl-C does, so its temporary folder is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _build(spec: SourceSpec, tok_spec: TokenizerSpec, work: Path, val_fraction: float, threads: int,
           progress: ProgressFn) -> dict[str, Any]:
    progress("load", 0, None)
    source = sources.open_source(spec, cache_dir=work / ".datasets-cache")
    progress("load", 1, 1)
    if source.train_chars == 0:
        raise CorpusError(f"{spec.dataset} has no text in split {source.info['train_split']!r} "
                          f"(column {source.text_column!r})")
    # Functions, not generators: the train documents are read twice (tokenizer sample, then encoding).
    train_docs: Callable[[], Iterable[tuple[str, bool]]] = lambda: _whole(source.train)
    val_docs: Callable[[], Iterable[tuple[str, bool]]] | None = None
    if source.val is not None:
        val_docs = lambda: _whole(source.val)
    elif source.train_chars is not None:
        train_docs = lambda: _split_by_characters(source.train, source.train_chars, val_fraction, "train")
        val_docs = lambda: _split_by_characters(source.train, source.train_chars, val_fraction, "val")

    progress("tokenizer", 0, None)
    kind = tok_spec.kind
    if tok_spec.from_path:
        model = tokenizer.Tokenizer.load(Path(tok_spec.from_path)).proto
        kind = _kind_of(Path(tok_spec.from_path))
    else:
        sample = _sample((text for text, _ in train_docs()), TOKENIZER_SAMPLE_CHARS, source.train_chars)
        if not any(sample):
            raise CorpusError(f"{spec.dataset} has no text to train on")
        model = _train_tokenizer(sample, tok_spec, source.train_chars, threads)
        del sample
    (work / "tokenizer.model").write_bytes(model)
    tok = tokenizer.Tokenizer(model)
    progress("tokenizer", 1, 1)

    dtype = token_dtype(tok.vocab_size)
    stats = {"train": _SplitStats(), "val": _SplitStats()}
    boundaries = None if val_docs is not None else (array("q"), array("q"))
    out = _TokenFile(work / "train.bin", dtype)
    _encode_into(train_docs(), tok, out, stats["train"], progress, threads, boundaries)
    out.close()
    if val_docs is not None:
        out = _TokenFile(work / "val.bin", dtype)
        _encode_into(val_docs(), tok, out, stats["val"], progress, threads)
        out.close()
        val_from = f"split {source.val_split}" if source.val_split else f"last {val_fraction:.0%} of the characters"
    else:
        first_val, documents, characters = _tail_split(boundaries, val_fraction)
        _move_tail(work / "train.bin", work / "val.bin", first_val, dtype.itemsize)
        total = stats["train"]
        stats["val"] = _SplitStats(total.documents - documents, total.characters - characters, total.tokens - first_val)
        stats["train"] = _SplitStats(documents, characters, first_val)
        val_from = f"last {val_fraction:.0%} of the documents"
    if source.val_split is None and "test" in source.info.get("splits", ()):
        val_from += " (split test left for the end: --val-split test validates on it)"
    for split, split_stats in stats.items():
        if split_stats.tokens == 0:
            raise CorpusError(f"the {split} split of {spec.dataset} is empty: use a larger corpus or another "
                              f"--val-fraction")
    return {
        "format": META_FORMAT,
        "rnngen_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source.info,
        "validation_from": val_from,
        "tokenizer": {"type": kind, "vocab_size": tok.vocab_size, "sha256": tok.sha256, "lossless": tok.lossless,
                      **({"from": str(tok_spec.from_path)} if tok_spec.from_path else {})},
        "dtype": dtype.name,
        "splits": {split: asdict(split_stats) for split, split_stats in stats.items()},
    }


class Corpus:
    """A prepared corpus folder: meta, tokenizer and memory-mapped token arrays."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta
        self.name = meta.get("name", path.name)

    @classmethod
    def open(cls, path: Path) -> "Corpus":
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
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
            raise CorpusError(f"{path} was prepared by another rnngen version: {rebuild}")
        if not _complete(meta):
            raise CorpusError(f"{meta_path} lacks the name, tokenizer or splits of the corpus: {rebuild}")
        corpus = cls(path, meta)
        tok = corpus.tokenizer()  # a damaged tokenizer fails here, not after hours of training
        if tok.sha256 != meta["tokenizer"].get("sha256") or tok.vocab_size != corpus.vocab_size:
            raise CorpusError(f"{path / 'tokenizer.model'} is not the tokenizer this corpus was encoded with: {rebuild}")
        return corpus

    @classmethod
    def find(cls, root: Path, name: str) -> "Corpus":
        """Open `root/<name>`, with an error that lists the prepared corpora when it is missing."""
        path = Path(root) / check_name(name)
        if not path.is_dir():
            known = ", ".join(meta["name"] for meta in list_corpora(root)) or "none yet"
            raise CorpusError(f"no corpus named {name!r} in {root} (prepared: {known}): "
                              f"run `rnngen prepare --dataset SOURCE --name {name}`")
        return cls.open(path)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["tokenizer"]["vocab_size"])

    def characters(self, split: str) -> int:
        return int(self.meta["splits"][split]["characters"])

    def tokens(self, split: str) -> np.ndarray:
        """The split's tokens, memory-mapped (nothing is read until used)."""
        path = self.path / f"{split}.bin"
        expected = int(self.meta["splits"][split]["tokens"])
        size = path.stat().st_size if path.exists() else -1
        if size != expected * self.dtype.itemsize:
            state = "missing" if size < 0 else f"{size} bytes, expected {expected * self.dtype.itemsize}"
            raise CorpusError(f"{path} is {state}: rebuild the corpus with `rnngen prepare ... --force`")
        return np.memmap(path, dtype=self.dtype, mode="r", shape=(expected,))

    def tokenizer(self) -> tokenizer.Tokenizer:
        return tokenizer.Tokenizer.load(self.path / "tokenizer.model")


def default_needed(root: Path) -> bool:
    """Whether the embedded corpus under `root` is missing or was made by an older recipe."""
    path = Path(root) / sources.DEFAULT_DATASET
    return not path.exists() or outdated(path)


def ensure_default(root: Path, progress: ProgressFn = lambda stage, done, total: None) -> Corpus | None:
    """Prepare the embedded corpus under `root` when `default_needed` (it needs no network); the new
    corpus, else None."""
    if not default_needed(root):
        return None
    return prepare(SourceSpec(), root=root, progress=progress)[0]


def outdated(path: Path) -> bool:
    """Whether `path` holds the embedded corpus made by an older recipe (it is rebuilt, not reused)."""
    from rnngen.data import pydocs

    try:
        source = json.loads((Path(path) / "meta.json").read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(source, dict) and source.get("dataset") == sources.DEFAULT_DATASET and \
        source.get("recipe") != pydocs.RECIPE


def _complete(meta: Any) -> bool:
    """Whether a meta.json holds what opening and listing a corpus read, with a valid name."""
    try:
        return (isinstance(meta, dict) and is_valid_name(meta["name"]) and isinstance(meta["source"], dict)
                and int(meta["tokenizer"]["vocab_size"]) > 0 and isinstance(meta["tokenizer"]["type"], str)
                and all(int(meta["splits"][split][key]) >= 0 for split in ("train", "val")
                        for key in ("documents", "characters", "tokens")))
    except (KeyError, TypeError, ValueError):
        return False


def list_corpora(root: Path) -> list[dict[str, Any]]:
    """The meta of every prepared corpus under `root`, by name; folders with a damaged meta.json are left out."""
    metas = []
    for meta_path in sorted(Path(root).glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if _complete(meta):
            metas.append(meta | {"path": str(meta_path.parent)})
    return metas


def corpus_identity(corpus: Corpus) -> dict[str, Any]:
    """What a checkpoint records of its corpus: enough to find it again and to check the tokenizer."""
    splits = corpus.meta["splits"]
    source = corpus.meta.get("source", {})
    return {"name": corpus.name, "path": str(corpus.path), "dataset": source.get("dataset"),
            "documents": source.get("documents"), "tokenizer": corpus.meta["tokenizer"],
            "train_tokens": splits["train"]["tokens"], "train_documents": splits["train"]["documents"],
            "train_characters": splits["train"]["characters"], "val_tokens": splits["val"]["tokens"],
            "val_characters": splits["val"]["characters"]}


def corpus_of(identity: dict[str, Any], root: Path) -> Corpus:
    """The corpus a checkpoint was trained on (`Checkpoint.corpus`): at its recorded path, else by name under `root`."""
    path = Path(identity["path"])
    if (path / "meta.json").exists():
        corpus = Corpus.open(path)
    else:
        # The name comes from a file that may have been edited or sent by someone else.
        corpus = Corpus.find(root, check_name(identity.get("name"), "the checkpoint's corpus"))
    require_same_tokenizer(f"corpus {corpus.path}", corpus.meta["tokenizer"], identity["tokenizer"],
                           "use the corpus the run was trained on")
    return corpus
