"""The embedded default corpus: docstrings of the Python standard library and installed packages.

Every machine that runs rnngen has it, with no network: several MB of English technical prose.
Docstrings are read with `ast` from the source files, so no module is imported or executed.
Documents are one module each (its docstring, then those of its classes and functions), ordered by
a hash of the module name: deterministic for a given environment, and the held-out tail of the
corpus is a fair sample of all packages rather than the last package in alphabetical order.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "datasets", "click", "rich", "sentencepiece", "safetensors")
SKIP_DIRS = {"test", "tests", "testing", "site-packages", "__pycache__", "idlelib", "turtledemo", "_vendor",
             "third_party"}
MIN_DOC_CHARS = 40


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


def _module_text(path: Path) -> str:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return ""
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_DOC_CHARS:
                docs.append(doc)
    return "\n\n".join(docs)


def _modules() -> list[tuple[str, Path]]:
    modules = []
    for package, root in _roots():
        for path in root.rglob("*.py"):
            if SKIP_DIRS.isdisjoint(path.relative_to(root).parts[:-1]):
                modules.append((f"{package}:{path.relative_to(root).as_posix()}", path))
    return modules


def documents() -> Iterator[dict[str, Any]]:
    """Yield one document per module, in a deterministic order; repeated docstrings appear once."""
    modules = sorted(_modules(), key=lambda item: hashlib.sha1(item[0].encode()).hexdigest())
    seen: set[str] = set()
    for module, path in modules:
        text = _module_text(path)
        key = hashlib.sha1(text.encode()).hexdigest()
        if text and key not in seen:
            seen.add(key)
            yield {"text": text, "module": module}


def load() -> Any:
    """The corpus as a `datasets.DatasetDict` with a single train split."""
    import datasets

    datasets.disable_progress_bars()
    # The versions enter the cache key: a new torch gives a rebuilt corpus, not a stale cached one.
    train = datasets.Dataset.from_generator(documents, gen_kwargs={}, config_name=_cache_key())
    return datasets.DatasetDict({"train": train})


def _cache_key() -> str:
    return hashlib.sha1(repr(sorted(package_versions().items())).encode()).hexdigest()[:16]
