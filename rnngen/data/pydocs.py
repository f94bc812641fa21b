"""The embedded default corpus: docstrings of the Python standard library and installed packages.

Every machine that runs rnngen has it, with no network: several MB of English technical prose.
Docstrings are read with `ast` from the source files, so no module is imported or executed.
Only their sentences are kept (`prose`): doctest examples, literal and code blocks, tables, reST and
Sphinx markup, section headings and the `name : type` lines of parameter lists are dropped, and
wrapped lines are joined into one line per paragraph, so that a model trained on it writes prose.
Documents are one module each (its docstring, then those of its classes and functions), ordered by
a hash of the module name: deterministic for a given environment, and the held-out tail of the
corpus is a fair sample of all packages rather than the last package in alphabetical order.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "datasets", "click", "rich", "sentencepiece", "safetensors")
SKIP_DIRS = {
    "test",
    "tests",
    "testing",
    "site-packages",
    "__pycache__",
    "idlelib",
    "turtledemo",
    "_vendor",
    "third_party",
}
MIN_DOC_CHARS = 40
# Which sections of numpy- and Google-style docstrings hold `name : type` items (their unindented lines
# are names, dropped; the indented lines under them are descriptions, kept), and which hold no prose.
ITEM_SECTIONS = {
    "parameters",
    "params",
    "args",
    "arguments",
    "keyword args",
    "keyword arguments",
    "kwargs",
    "other parameters",
    "returns",
    "return",
    "yields",
    "yield",
    "raises",
    "raise",
    "warns",
    "attributes",
    "receives",
    "methods",
    "inputs",
    "outputs",
    "variables",
}
SKIPPED_SECTIONS = {"see also", "references", "shape", "examples", "example", "todo"}
KEPT_DIRECTIVES = {"note", "warning", "hint", "tip", "important", "attention", "caution", "danger", "admonition"}
RECIPE = 2  # the version of the steps below; it enters the cache keys, so a change rebuilds the corpus

_UNDERLINE = re.compile(r"^\s*([-=~^*+#\"'`:.])\1{2,}\s*$")
_SIMPLE_TABLE = re.compile(r"^\s*=+( +=+)+\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\.(\s+([\w:-]+)::(.*)|\s.*|)$")
_GOOGLE_HEADING = re.compile(r"^\s*([A-Z][A-Za-z ]{1,30}):\s*$")
_GOOGLE_ITEM = re.compile(r"^\s*\*{0,2}[\w.]+(\s*\([^)]*\))?(:|\s+--)\s+(\S.*)$")
_NUMPY_ITEM = re.compile(r"^\s*\*{0,2}[\w.,\s*]+\s:(\s.*)?$")
_BULLET = re.compile(r"^\s*([-*+\u2022]|\d+[.)]|\([a-z0-9]\)|#\.)\s+")
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|return\b|raise |assert |print\(|@\w|if .*:$|for .*:$|while .*:$"
    r"|with .*:$|try:|except\b.*:$|else:$|elif .*:$|[\w.\[\]'\"]+\s*[-+*/|&]?=[^=]|[\w.]+\(.*\)\s*(#.*)?$|<.*>:?$)"
    r"|[;{}]\s*$|\s#\s|^\s*[$%]\s"
)
_ROLE = re.compile(r":[\w:.+-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^`>]*>`_{1,2}")
_INLINE = [
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`]+)`_{0,2}"), r"\1"),
    (re.compile(r"\*\*(\S[^*]*?)\*\*"), r"\1"),
    (re.compile(r"(?<![\w*])\*(\S[^*]*?)\*(?![\w*])"), r"\1"),
    (re.compile(r"\s*\[[\w#*]+\]_"), ""),
    (re.compile(r"\|(\w[^|]*)\|"), r"\1"),
]
_SYMBOLS = set("()[]{}=<>_*/\\|#@$%^&~`;")


def _roots() -> list[tuple[str, Path]]:
    roots = [("python-stdlib", Path(sysconfig.get_paths()["stdlib"]))]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            roots.append((name, Path(spec.origin).parent))
    return roots


def package_versions() -> dict[str, str]:
    """The packages whose docstrings make up the corpus, with their versions."""
    import platform

    versions = {"python-stdlib": platform.python_version()}
    for name, _ in _roots()[1:]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _role(match: re.Match) -> str:
    text = match.group(1).lstrip("!")
    if text.endswith(">") and "<" in text:
        return text[: text.index("<")].strip()
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text


def _inline(text: str) -> str:
    text = _LINK.sub(r"\1", _ROLE.sub(_role, text))
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _structure(doc: str) -> list[str]:
    """The docstring's lines without examples, code, tables, directives, headings and item names;
    a blank line (or a bullet) starts a new paragraph."""
    kept: list[str] = []
    lines = doc.expandtabs().split("\n")
    section = ""
    skip_deeper_than: int | None = None  # skip the indented body of a literal block or a directive
    in_doctest = in_table = in_fence = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if skip_deeper_than is not None:
            if not stripped or _indent(line) > skip_deeper_than:
                continue
            skip_deeper_than = None
        if in_fence or stripped.startswith("```"):
            in_fence = in_fence != stripped.startswith("```")
            continue
        if in_doctest:
            in_doctest = bool(stripped)
            continue
        if stripped.startswith(">>>"):
            in_doctest = True
            continue
        if stripped == "..." or stripped.startswith("... "):
            continue
        if _SIMPLE_TABLE.match(line):
            in_table = not (in_table and not following.strip())
            continue
        if in_table or stripped.startswith(("+-", "+=", "|")):
            continue
        if _UNDERLINE.match(line):
            continue
        if _UNDERLINE.match(following) and stripped and len(stripped) <= 40:
            section = stripped.lower()  # a heading, underlined on the next line
            kept.append("")
            continue
        heading = _GOOGLE_HEADING.match(line)
        if heading and heading.group(1).lower() in ITEM_SECTIONS | SKIPPED_SECTIONS:
            section = heading.group(1).lower()
            kept.append("")
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            name = (directive.group(2) or "").lower()
            if name not in KEPT_DIRECTIVES:
                skip_deeper_than = _indent(line)
            elif directive.group(3).strip():
                kept.append(" " * _indent(line) + directive.group(3).strip())
            kept.append("")
            continue
        if section in SKIPPED_SECTIONS and stripped:
            if _indent(line) == 0 and not heading:
                section = "" if section.startswith("example") else section
            if section in SKIPPED_SECTIONS:
                continue
        if section in ITEM_SECTIONS and stripped:
            item = _GOOGLE_ITEM.match(line)
            if item:
                kept.extend(["", " " * _indent(line) + item.group(3)])
                continue
            if _indent(line) == 0 or _NUMPY_ITEM.match(line):
                kept.append("")
                continue
        if stripped.endswith("::"):
            skip_deeper_than = _indent(line)
            text = stripped[:-2].rstrip()
            if text:
                kept.append(" " * _indent(line) + text + (":" if not stripped.endswith(" ::") else ""))
            kept.append("")
            continue
        if _CODE_LINE.search(line):
            kept.append("")
            continue
        if _BULLET.match(line):
            kept.append("")
            line = _BULLET.sub("", line, count=1)
        kept.append(line)
    return kept


def _is_prose(paragraph: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", paragraph)
    if len(words) < 3:
        return False
    visible = [c for c in paragraph if not c.isspace()]
    symbols = sum(c in _SYMBOLS for c in visible) / len(visible)
    letters = sum(c.isalpha() for c in visible) / len(visible)
    return symbols < 0.05 and letters > 0.7


def prose(doc: str) -> str:
    """The sentences of one docstring: paragraphs of plain text, one per line, markup removed."""
    paragraphs, current = [], []
    for line in _structure(doc) + [""]:
        if line.strip():
            current.append(line.strip())
            continue
        if current:
            paragraph = " ".join(current)
            if ":math:" not in paragraph:
                text = " ".join(_inline(paragraph).split())
                if _is_prose(text):
                    paragraphs.append(text)
            current = []
    return "\n".join(paragraphs)


def _module_text(path: Path) -> tuple[str, int]:
    """The prose of a module's docstrings, one docstring per block, and the raw docstrings' characters."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return "", 0
    docs, raw = [], 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_DOC_CHARS:
                raw += len(doc)
                text = prose(doc)
                if len(text) >= MIN_DOC_CHARS:
                    docs.append(text)
    return "\n\n".join(docs), raw


def _modules() -> list[tuple[str, Path]]:
    modules = []
    for package, root in _roots():
        for path in root.rglob("*.py"):
            if SKIP_DIRS.isdisjoint(path.relative_to(root).parts[:-1]):
                modules.append((f"{package}:{path.relative_to(root).as_posix()}", path))
    return modules


def documents() -> Iterator[dict[str, Any]]:
    """Yield one document per module, in a deterministic order; repeated modules appear once.

    `raw_chars` counts the module's docstrings before `prose` (0 for a repeat), so that the share kept
    can be reported.
    """
    modules = sorted(_modules(), key=lambda item: hashlib.sha1(item[0].encode()).hexdigest())
    seen: set[str] = set()
    for module, path in modules:
        text, raw = _module_text(path)
        key = hashlib.sha1(text.encode()).hexdigest()
        if text and key not in seen:
            seen.add(key)
            yield {"text": text, "module": module, "raw_chars": raw}


def load() -> Any:
    """The corpus as a `datasets.DatasetDict` with a single train split."""
    import datasets

    datasets.disable_progress_bars()
    # The versions enter the cache key: a new torch gives a rebuilt corpus, not a stale cached one.
    train = datasets.Dataset.from_generator(documents, gen_kwargs={}, config_name=_cache_key())
    return datasets.DatasetDict({"train": train})


def _cache_key() -> str:
    return hashlib.sha1(repr((RECIPE, sorted(package_versions().items()))).encode()).hexdigest()[:16]


def kept_share(train: Any) -> dict[str, int]:
    """How much of the raw docstring text the corpus kept, from the loaded train split."""
    return {"raw_docstring_chars": int(sum(train["raw_chars"])), "kept_chars": int(sum(map(len, train["text"])))}
