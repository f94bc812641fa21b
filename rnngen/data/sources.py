"""Where text comes from: every source goes through `datasets` (`load_dataset`; for local text files,
`load_dataset_builder`, which says which files make which split).

A source is a hub id (with optional config and revision), a local file (.txt, .md, .json, .jsonl,
.csv, .parquet), a local folder of such files, or a local folder laid out like a hub dataset repo
(a README.md whose YAML header names configs and splits). The embedded default, `pydocs`, is built
in-process by `rnngen.data.pydocs`. This module knows nothing of tokens.

A split is read as pieces of documents, `(text, ends_document)`, so that a document of any length (a
single 2 GB text file, a 300 MB line) is never held whole, in any document mode: local text files are read
here in pieces of PIECE_CHARS, decoded as `datasets` decodes them (UTF-8, universal newlines), without
converting them to Arrow, and a document is given out PIECE_CHARS at a time.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rnngen.errors import CorpusError, param
from rnngen.store.hub import hub_reachable

DEFAULT_DATASET = "pydocs"
# A `test` split is never taken for validation unless asked for (--val-split test): it is for the end.
VALIDATION_SPLITS = ("validation", "valid")
# What a document is: `rows` as stored (one per text file, one per dataset row), each `lines`, the
# `paragraphs` between blank lines, or `articles`: rows joined into one text and cut at each
# wikitext-style ` = Title = ` heading. `auto` is `rows`, or `articles` when the rows are the lines
# of a text (headings among the first rows).
DOCUMENT_MODES = ("auto", "rows", "lines", "paragraphs", "articles")
_HEADING = r" ?= [^=\n].* = ?"
_ARTICLE_HEADING = re.compile(rf"^{_HEADING}\n?$")  # a row that is a heading line (detection)
# The heading lines of a text (cutting): one at its start, the others after a newline (a literal that `re` finds
# fast, where `^` tries every position).
_HEADING_LINE = re.compile(rf"{_HEADING}$", re.MULTILINE)
_NEXT_HEADING = re.compile(rf"\n(?={_HEADING}$)", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
DETECT_ROWS = 2000
# Local text files are read, and documents given out, this many characters at a time; the documents are those
# of the whole text, whatever the pieces it was read in.
PIECE_CHARS = 1_000_000
# How each local file type is read. A .txt file is one document, so a single text file (tiny
# shakespeare) is a single-document corpus and lines are not torn into separate documents.
FILE_BUILDERS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class SourceSpec:
    """What `rnngen prepare` was asked to read; saved in meta.json to recognise a cached rerun."""

    dataset: str = DEFAULT_DATASET
    config: str | None = None
    revision: str | None = None
    split: str = "train"
    val_split: str | None = None
    text_column: str | None = None
    streaming: bool = False
    max_chars: int | None = None
    documents: str = "auto"


# A stream of pieces of documents: (text, ends_document). A document is the text of its pieces up to the
# one that ends it; a stream may stop inside a document (the train part of a text cut by characters).
Pieces = Iterable[tuple[str, bool]]


@dataclass
class Source:
    """An opened source: re-iterable pieces of the train documents (and the validation ones, when the source
    has a validation split)."""

    train: Pieces
    val: Pieces | None
    text_column: str
    val_split: str | None
    info: dict[str, Any]
    # Characters in the train documents (after --max-chars), known without streaming.
    train_chars: int | None


def is_local(dataset: str) -> bool:
    """A dataset argument names a local path when it exists or is written like one."""
    try:
        exists = Path(dataset).exists()
    except OSError:  # a name too long for the file system
        exists = False
    return exists or dataset.startswith((".", "/", "~")) or Path(dataset).suffix in FILE_BUILDERS


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Within the block, `datasets` answers from its cache at once instead of retrying an unreachable hub for
    ~25 s; after it, the process's environment and both libraries' settings are as they were."""
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Both libraries read the variable at import time: their constants are set too, and put back after.
    modules = [sys.modules.get(name) for name in ("huggingface_hub.constants", "datasets.config")]
    saved = [(module, module.HF_HUB_OFFLINE) for module in modules if module is not None]
    for module, _ in saved:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in saved:
            module.HF_HUB_OFFLINE = value
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def _offline_error(dataset: str) -> CorpusError:
    return CorpusError(
        f"cannot reach the Hugging Face hub for {dataset!r} and it is not in the local cache: "
        f"pass a local file or folder as {param('dataset')} (for example ./my_texts/) or use the embedded default "
        f"({param('dataset')} {DEFAULT_DATASET})"
    )


def _load_kwargs(spec: SourceSpec) -> tuple[list[Any], dict[str, Any]]:
    """The arguments for `load_dataset` that read `spec.dataset`; for a local folder not laid out like a hub
    dataset repo, `folder` and no arguments: `_folder` reads it."""
    kwargs: dict[str, Any] = {"streaming": spec.streaming}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if not is_local(spec.dataset):
        return [spec.dataset, spec.config], kwargs
    path = Path(spec.dataset).expanduser()
    if not path.exists():
        raise CorpusError(f"no such file or folder: {spec.dataset}")
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise CorpusError(f"cannot read {path.name}: use a {', '.join(sorted(FILE_BUILDERS))} file")
        if builder == "text":
            kwargs["sample_by"] = "document"
        return [builder], {**kwargs, "data_files": {"train": str(path)}}
    if spec.config is None and not _laid_out_as_repo(path):
        return [], {**kwargs, "folder": path}
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "README.md"]
    if files and all(FILE_BUILDERS.get(p.suffix.lower()) == "text" for p in files):
        kwargs["sample_by"] = "document"
    return [str(path), spec.config], kwargs


def _laid_out_as_repo(folder: Path) -> bool:
    """Whether `folder` is laid out like a hub dataset repo: a README.md whose YAML header names its configs, or
    a loading script named after the folder (which `datasets` refuses, naming the fix)."""
    if (folder / f"{folder.resolve().name}.py").is_file():
        return True
    readme = folder / "README.md"
    if not readme.is_file():
        return False
    import yaml
    from huggingface_hub.repocard import metadata_load

    try:
        metadata = metadata_load(readme)
    except (yaml.YAMLError, UnicodeDecodeError):  # a README of the user's own, not a dataset card
        return False
    return isinstance(metadata, dict) and "configs" in metadata


def _folder(folder: Path, spec: SourceSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A local folder's splits: the files of each as `datasets` names them (by their names: train, validation, test;
    else all train), each kind read as a file of that kind alone is (text files as `TextFiles`, the others by their
    `datasets` builder), and a split that holds several kinds read kind after kind (`Mixed`), none left out."""
    import datasets
    from datasets.data_files import DataFilesDict, get_data_patterns

    base = folder.resolve().as_posix()
    data: dict[str, Any] = {}
    for split, files in DataFilesDict.from_patterns(get_data_patterns(base), base_path=base).items():
        kinds: dict[str, list[str]] = {builder: [] for builder in FILE_BUILDERS.values()}  # in a stable order
        unread = sorted({Path(file).suffix.lower() or Path(file).name for file in files} - set(FILE_BUILDERS))
        if unread:  # refused rather than left out without a word
            raise CorpusError(
                f"{spec.dataset} holds {', '.join(unread)} files, which rnngen does not read as text: move them out, "
                f"or keep {', '.join(sorted(FILE_BUILDERS))} files only"
            )
        for file in files:
            kinds[FILE_BUILDERS[Path(file).suffix.lower()]].append(file)
        parts = [
            (
                builder,
                TextFiles(files)
                if builder == "text"
                else datasets.load_dataset(builder, data_files={str(split): files}, split=str(split), **kwargs),
            )
            for builder, files in kinds.items()
            if files
        ]
        if parts:
            data[str(split)] = parts[0][1] if len(parts) == 1 else Mixed(parts, spec)
    if not data:
        raise CorpusError(f"{spec.dataset} holds no file to read: put {', '.join(sorted(FILE_BUILDERS))} files in it")
    return data


def _reads_text(kwargs: dict[str, Any]) -> bool:
    """Whether `_load_kwargs` read a local source of text files only (each file one document)."""
    return kwargs.get("sample_by") == "document"


def _explain(exc: BaseException, spec: SourceSpec) -> CorpusError | None:
    """Turn what `datasets` raises into one line a user can act on (None: not a known case)."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for err in chain:
        text = str(err)
        name = type(err).__name__
        if "scripts are no longer supported" in text:
            return CorpusError(
                f"{spec.dataset!r} is a script-based dataset, which the installed `datasets` no longer runs: "
                f"try {param('revision')} refs/convert/parquet, or download its raw text file and pass its path"
            )
        if isinstance(err, UnicodeDecodeError):
            return CorpusError(
                f"{spec.dataset} is not UTF-8 text ({err.reason} at byte {err.start}): convert it to UTF-8 first"
            )
        if name in ("DatasetNotFoundError", "FileNotFoundError", "EmptyDatasetError", "DataFilesNotFoundError"):
            return CorpusError(
                f"dataset {spec.dataset!r} not found ({text.splitlines()[0] if text else name}): "
                "check the hub id or the path"
            )
        if isinstance(err, ConnectionError) or name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
            return _offline_error(spec.dataset)
        if "BuilderConfig" in text and "not found" in text:
            return CorpusError(
                f"dataset {spec.dataset!r} has no config {spec.config!r}: "
                f"{text.split('Available:')[-1].strip() if 'Available:' in text else text}"
            )
        if isinstance(err, ValueError) and "Unknown split" in text:
            return CorpusError(f"{text}: pick one with {param('split')}")
    return None


def load(spec: SourceSpec, cache_dir: Path | None = None) -> Any:
    """`load_dataset` for the spec, with the hub probed first so an offline machine fails in seconds; for local
    text files, the `TextFiles` of each split (the files `datasets` would read, read here in pieces).

    Local sources are converted in `cache_dir`: the shared cache keys local folders by their name,
    so two folders called `data` would otherwise be read as one.
    """
    if spec.dataset == DEFAULT_DATASET:
        from rnngen.data import pydocs

        return pydocs.load()
    args, kwargs = _load_kwargs(spec)
    if is_local(spec.dataset):
        kwargs["cache_dir"] = str(cache_dir) if cache_dir else None
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    unreachable = not is_local(spec.dataset) and not hub_reachable()
    try:
        with _offline() if unreachable else contextlib.nullcontext():
            if "folder" in kwargs:
                return _folder(kwargs.pop("folder"), spec, kwargs)
            if _reads_text(kwargs):
                # Which files make which split is `datasets`' rule; reading them is ours, in pieces.
                kwargs.pop("streaming")
                builder = datasets.load_dataset_builder(*args, **kwargs)
                return {str(split): TextFiles(files) for split, files in builder.config.data_files.items()}
            return datasets.load_dataset(*args, **kwargs)
    except Exception as exc:
        explained = _explain(exc, spec)
        if explained is None:
            raise
        raise explained from exc


class TextFiles:
    """A split made of local text files, each one document, read PIECE_CHARS characters at a time."""

    # As `datasets` describes a text file: one string column.
    features = {"text": SimpleNamespace(dtype="string")}

    def __init__(self, files: list[str]):
        self.files = [str(file) for file in files]

    def rows(self) -> Iterator[tuple[str, bool]]:
        """Each file's text in pieces of PIECE_CHARS, the last piece of a file marked; an empty file is one empty
        piece."""
        for file in self.files:
            with _opened(file) as handle:
                text = handle.read(PIECE_CHARS)
                while more := handle.read(PIECE_CHARS):
                    yield text, False
                    text = more
                yield text, True

    def first_rows(self) -> Iterator[str]:
        """What `detect_documents` needs of each file's text without reading it whole: its first line and the two
        characters after it (a row is a heading when it is one line followed by at most two newlines)."""
        for file in self.files:
            with _opened(file) as handle:
                yield handle.readline(PIECE_CHARS) + handle.read(2)


class Mixed:
    """A split of a local folder that holds files of several kinds, read kind after kind (text files first, then
    JSON, CSV and Parquet, as in FILE_BUILDERS), each kind by its own text column, found as in a file of that kind
    alone."""

    def __init__(self, parts: list[tuple[str, Any]], spec: SourceSpec):
        self.features = {spec.text_column or "text": SimpleNamespace(dtype="string")}
        self.parts = [
            (data, _pick_column(data.features, spec.text_column, f"the {builder} files of {spec.dataset}"))
            if builder != "text"
            else (data, "text")
            for builder, data in parts
        ]


@contextlib.contextmanager
def _opened(file: str) -> Iterator[Any]:
    """`file` opened as `datasets`' text builder opens it: UTF-8, universal newlines translated to "\\n"; a byte
    that is not UTF-8 reported at its offset in the file (the decoder counts from the block it was decoding)."""
    try:
        with open(file, encoding="utf-8") as handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise _first_bad_byte(file) or exc from exc


def _first_bad_byte(file: str) -> UnicodeDecodeError | None:
    """The error of decoding all of `file` as UTF-8 at once (None if it decodes), found block by block."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # of the block in the file; the decoder's error counts from the bytes it held back before it
    with open(file, "rb") as raw:
        while True:
            block = raw.read(PIECE_CHARS)
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                start, end = offset - held + exc.start, offset - held + exc.end
                return UnicodeDecodeError(exc.encoding, exc.object, start, end, exc.reason)
            if not block:
                return None
            offset += len(block)


def _is_text(feature: Any) -> bool:
    """A string column, or a column of mixed types (`datasets` reads those as Json) that may hold text."""
    return getattr(feature, "dtype", None) in ("string", "large_string") or type(feature).__name__ == "Json"


def _pick_column(features: Any, requested: str | None, dataset: str) -> str:
    if features is None:
        return requested or "text"
    text_columns = [name for name, feat in features.items() if _is_text(feat)]
    if requested:
        if requested not in features:
            raise CorpusError(f"{dataset} has no column {requested!r}; its columns are: {', '.join(features)}")
        if requested not in text_columns:
            raise CorpusError(
                f"column {requested!r} of {dataset} is not text; text columns: {', '.join(text_columns) or 'none'}"
            )
        return requested
    if "text" in text_columns:
        return "text"
    if len(text_columns) == 1:
        return text_columns[0]
    raise CorpusError(
        f"cannot tell which column of {dataset} holds the text: pass {param('text_column')}, one of: "
        f"{', '.join(text_columns or list(features))}"
    )


def _rows(split_data: Any, column: str, spec: SourceSpec) -> Iterator[str]:
    """The texts of one split's rows, empty rows included (they mark breaks in line-per-row text).

    Values that are not text (numbers, lists in a column of mixed types) are left out.
    """
    try:
        for row in split_data.select_columns([column]).iter(batch_size=1000):
            for text in row[column]:
                if isinstance(text, str):
                    yield text
    except CorpusError:
        raise
    except Exception as exc:
        explained = _explain(exc, spec)
        if explained is None:
            raise
        raise explained from exc


def split_documents(pieces: Pieces, mode: str) -> Iterator[tuple[str, bool]]:
    """Cut rows, given in pieces `(text, ends_row)`, into the non-empty documents of `mode` (one of DOCUMENT_MODES
    but auto), given in pieces `(text, ends_document)`. A row ends a line, and a paragraph; a document longer than
    PIECE_CHARS is given out in pieces, as `rows` gives out a long file (`_Document`)."""
    if mode == "rows":
        # An empty row (an empty file) is no document; any other is passed on as it was read.
        return (piece for piece in pieces if piece != ("", True))
    if mode == "lines":
        return _separated(pieces, lambda text: text.split("\n"), len)
    if mode == "paragraphs":
        return _separated(pieces, _PARAGRAPH_BREAK.split, _break_start)
    return _articles(pieces)


class _Document:
    """The document being cut from a stream of text, as `text.strip("\\n")` of its whole text, and none when that
    holds only whitespace. Its text is held until it passes PIECE_CHARS, then given out as a piece of it, so no
    document is held whole; what is given out is not taken back, so a document of only whitespace longer than
    that is kept."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.size = 0
        self.given = False  # a piece of it was given out
        self.visible = False  # it holds a character that is not whitespace

    def add(self, text: str) -> Iterator[tuple[str, bool]]:
        """Add `text` to the document: nothing, or a piece of it when the text held passes PIECE_CHARS."""
        if not self.started():
            text = text.lstrip("\n")
        if not text:
            return
        self.held.append(text)
        self.size += len(text)
        self.visible = self.visible or not text.isspace()
        if self.size > PIECE_CHARS:
            whole = "".join(self.held)
            # Newlines at its end are held back: they are left out if the document ends after them.
            body = whole.rstrip("\n") or whole
            yield body, False
            rest = whole[len(body) :]
            self.held, self.size, self.given = [rest] if rest else [], len(rest), True

    def started(self) -> bool:
        """Whether some of its text was added (newlines at its start aside)."""
        return self.given or bool(self.held)

    def end(self, text: str = "") -> Iterator[tuple[str, bool]]:
        """Add `text` and end the document: its last piece, unless it has no text; the next document starts empty."""
        yield from self.add(text)
        if self.given or self.visible:
            yield "".join(self.held).rstrip("\n"), True
        self.held, self.size, self.given, self.visible = [], 0, False, False


def _separated(
    pieces: Pieces, split: Callable[[str], list[str]], break_start: Callable[[str], int]
) -> Iterator[tuple[str, bool]]:
    """The documents between the separators that `split` splits at (and at each row's end). `break_start(text)` is
    where a separator may begin at the end of `text` and end in the next piece: that end is read again with it."""
    document = _Document()
    carry = ""
    for text, ends_row in pieces:
        parts = split(carry + text if carry else text)
        carry, last = "", None if ends_row else parts.pop()
        if parts and document.started():
            yield from document.end(parts.pop(0))
        # The documents wholly within the piece: given out as `_Document` would give them.
        yield from ((part.strip("\n"), True) for part in parts if part.strip())
        if last is not None:
            start = break_start(last)
            if len(last) - start <= PIECE_CHARS:
                last, carry = last[:start], last[start:]
            yield from document.add(last)


def _break_start(text: str) -> int:
    """Where a paragraph break may begin at the end of `text`: its last newline, when only spaces and tabs follow."""
    start = text.rfind("\n")
    return start if start >= 0 and not text[start + 1 :].strip(" \t") else len(text)


def _joined(pieces: Pieces) -> Iterator[str]:
    """Rows, given in pieces, as one text (a row that does not end with a newline gets one), in pieces of about
    PIECE_CHARS: many short rows make one piece."""
    batch: list[str] = []
    size = 0
    row_end = ""  # the last character of the row being read
    for text, ends_row in pieces:
        row_end = text[-1:] or row_end
        if ends_row:
            text += "" if row_end == "\n" else "\n"
            row_end = ""
        batch.append(text)
        size += len(text)
        if size >= PIECE_CHARS:
            yield "".join(batch)
            batch, size = [], 0
    yield "".join(batch)


def _articles(pieces: Pieces) -> Iterator[tuple[str, bool]]:
    """The rows joined into one text, cut before each heading line that follows text. A line longer than
    PIECE_CHARS is given to its article unread: it is no heading."""
    document = _Document()
    line = ""  # the start of the line being read, held until its end says whether it is a heading
    long = False  # the line being read passed PIECE_CHARS: its start is in the article already
    for text in _joined(pieces):
        text = line + text if line else text
        if long:
            rest = text.find("\n") + 1
            yield from document.add(text[:rest] if rest else text)
            text, long = (text[rest:], False) if rest else ("", True)
        cut = text.rfind("\n") + 1
        lines, line = text[:cut], text[cut:]
        start = 0
        first = [0] if _HEADING_LINE.match(lines) else []
        for heading in itertools.chain(first, (found.end() for found in _NEXT_HEADING.finditer(lines))):
            yield from document.add(lines[start:heading])
            if document.visible:
                yield from document.end()
            start = heading
        yield from document.add(lines[start:])
        if len(line) > PIECE_CHARS:
            yield from document.add(line)
            line, long = "", True
    yield from document.end()


def detect_documents(rows: Iterable[str]) -> str:
    """`articles` when the first rows are the lines of a text with ` = Title = ` headings, else `rows`."""
    for number, row in enumerate(rows):
        if number >= DETECT_ROWS:
            break
        if _ARTICLE_HEADING.match(row):
            return "articles"
    return "rows"


def _limited(pieces: Pieces, max_chars: int | None) -> Iterator[tuple[str, bool]]:
    """The pieces up to `max_chars` characters in all (the last one cut, ending its document)."""
    seen = 0
    for text, end in pieces:
        if max_chars is not None and seen + len(text) >= max_chars:
            yield text[: max_chars - seen], True
            return
        seen += len(text)
        yield text, end


class _Documents:
    """A re-iterable view of a split's documents as pieces (prepare reads the train split more than once)."""

    def __init__(self, split_data: Any, column: str, mode: str, spec: SourceSpec):
        self._args = (split_data, column, mode, spec)

    def __iter__(self) -> Iterator[tuple[str, bool]]:
        split_data, column, mode, spec = self._args
        return _limited(self._pieces(split_data, column, mode, spec), spec.max_chars)

    @staticmethod
    def _pieces(split_data: Any, column: str, mode: str, spec: SourceSpec) -> Iterator[tuple[str, bool]]:
        return _decoded(split_documents(_row_pieces(split_data, column, spec), mode), spec)


def _row_pieces(split_data: Any, column: str, spec: SourceSpec) -> Iterator[tuple[str, bool]]:
    """The rows of a split as pieces `(text, ends_row)`: a dataset's rows whole, a text file's in pieces."""
    if isinstance(split_data, Mixed):
        return itertools.chain.from_iterable(_row_pieces(part, own, spec) for part, own in split_data.parts)
    if isinstance(split_data, TextFiles):
        return split_data.rows()
    return ((row, True) for row in _rows(split_data, column, spec))


def _first_rows(split_data: Any, column: str, spec: SourceSpec) -> Iterator[str]:
    """What `detect_documents` reads of a split's first rows."""
    if isinstance(split_data, Mixed):
        return itertools.chain.from_iterable(_first_rows(part, own, spec) for part, own in split_data.parts)
    if isinstance(split_data, TextFiles):
        return split_data.first_rows()
    return _rows(split_data, column, spec)


def _decoded(items: Iterator[Any], spec: SourceSpec) -> Iterator[Any]:
    """`items` read from local text files, with a file that is not UTF-8 reported as `datasets` reports it."""
    try:
        yield from items
    except UnicodeDecodeError as exc:
        raise _explain(exc, spec) from exc


def open_source(spec: SourceSpec, cache_dir: Path | None = None) -> Source:
    """Load the dataset and return its train and validation documents."""
    data = load(spec, cache_dir)
    splits = list(data.keys())
    train_name = spec.split
    if train_name not in data:
        if spec.split == "train" and len(splits) == 1:
            train_name = splits[0]
        else:
            raise CorpusError(
                f"{spec.dataset} has no split {spec.split!r}; its splits: {', '.join(splits)}: "
                f"pick one with {param('split')}"
            )
    val_name = spec.val_split
    if val_name is not None and val_name not in data:
        raise CorpusError(f"{spec.dataset} has no split {val_name!r}; its splits: {', '.join(splits)}")
    if val_name is None:
        val_name = next((name for name in VALIDATION_SPLITS if name in data and name != train_name), None)
    train = data[train_name]
    column = _pick_column(train.features, spec.text_column, spec.dataset)
    mode = spec.documents
    if mode == "auto":
        mode = detect_documents(_decoded(_first_rows(train, column, spec), spec))
    elif mode not in DOCUMENT_MODES:
        raise CorpusError(f"unknown {param('documents')} {mode!r}: choose one of {', '.join(DOCUMENT_MODES)}")
    train_docs = _Documents(train, column, mode, spec)
    train_chars = None
    if not spec.streaming:
        train_chars = sum(len(text) for text, _ in train_docs)
    val_docs = _Documents(data[val_name], column, mode, spec) if val_name else None
    info = {
        "dataset": spec.dataset,
        "config": spec.config,
        "revision": spec.revision,
        "train_split": train_name,
        "val_split": val_name,
        "splits": splits,
        "text_column": column,
        "documents": mode,
        "fingerprint": getattr(train, "_fingerprint", None),
    }
    if spec.dataset == DEFAULT_DATASET:
        from rnngen.data import pydocs

        info["packages"] = pydocs.package_versions()
        info["recipe"] = pydocs.RECIPE
        info.update(pydocs.kept_share(train))
    return Source(
        train=train_docs, val=val_docs, text_column=column, val_split=val_name, info=info, train_chars=train_chars
    )
