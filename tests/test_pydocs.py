"""The embedded pydocs corpus keeps the sentences of docstrings and drops code, markup and tables."""

from __future__ import annotations

import json
import re

from rnngen.data import pydocs
from rnngen.data.preparing import outdated, prepare
from rnngen.data.sources import SourceSpec
from rnngen.data.vocabulary import TokenizerSpec

NUMPY_STYLE = """Compute the mean of the values along an axis.

This function returns the average of the array elements, and it
wraps its lines at seventy-two columns like most docstrings do.

.. versionadded:: 1.7.0

.. note:: The mean is computed in float64 for integer inputs.

Parameters
----------
a : array_like
    The array whose mean is wanted, given as any nested sequence.
axis : int, optional
    The axis along which the means are computed.

Returns
-------
m : ndarray
    A new array holding the result.

See Also
--------
average : Weighted average.

Notes
-----
The arithmetic mean is the sum of the elements divided by their number,
see :func:`numpy.sum` and :class:`~numpy.ma.MaskedArray` for ``details``.

=====  =====
kind   value
=====  =====
int    float
=====  =====

+------+------+
| a    | b    |
+------+------+

Examples
--------
The mean of a small array is easy to check by hand.

>>> a = np.array([[1, 2], [3, 4]])
>>> np.mean(a)
2.5
>>> for x in a:
...     print(x)
[1 2]
[3 4]
"""

GOOGLE_STYLE = """Open a dialog and wait for the answer.

Use it like this::

    answer = ask("Name?")
    print(answer)

Args:
    prompt (str): The question that the user reads in the dialog.
    timeout: How long to wait before the dialog closes itself.

Returns:
    The answer that the user typed into the dialog.

```python
ask("fenced")
```

.. code-block:: python

    ask("directive")
"""


def test_prose_keeps_sentences_and_drops_code_markup_and_tables():
    text = pydocs.prose(NUMPY_STYLE)
    lines = text.split("\n")
    assert lines[:2] == [
        "Compute the mean of the values along an axis.",
        "This function returns the average of the array elements, and it wraps its lines at seventy-two "
        "columns like most docstrings do.",
    ]
    assert "The mean is computed in float64 for integer inputs." in lines
    assert "The array whose mean is wanted, given as any nested sequence." in lines
    assert (
        "The arithmetic mean is the sum of the elements divided by their number, see numpy.sum and "
        "MaskedArray for details." in lines
    )
    assert "The mean of a small array is easy to check by hand." in lines
    for gone in (
        ">>>",
        "...",
        "np.array",
        "2.5",
        "[1 2]",
        "----",
        "versionadded",
        "1.7.0",
        "array_like",
        "Parameters",
        "Returns",
        "See Also",
        "Weighted average",
        "kind",
        "+--",
        "|",
        ":func:",
        "``",
    ):
        assert gone not in text, gone


def test_prose_of_google_style_and_literal_blocks():
    lines = pydocs.prose(GOOGLE_STYLE).split("\n")
    assert lines == [
        "Open a dialog and wait for the answer.",
        "Use it like this:",
        "The question that the user reads in the dialog.",
        "How long to wait before the dialog closes itself.",
        "The answer that the user typed into the dialog.",
    ]


def test_documents_are_modules_of_prose_with_the_raw_size(tmp_path, monkeypatch):
    module = tmp_path / "mod.py"
    module.write_text(f'"""{NUMPY_STYLE}"""\n\ndef ask():\n    """{GOOGLE_STYLE}"""\n')
    monkeypatch.setattr(pydocs, "_modules", lambda: [("pkg:mod.py", module)])
    (doc,) = pydocs.documents()
    assert doc["module"] == "pkg:mod.py" and doc["raw_chars"] == len(NUMPY_STYLE.strip()) + len(GOOGLE_STYLE.strip())
    assert doc["text"] == pydocs.prose(NUMPY_STYLE.strip()) + "\n\n" + pydocs.prose(GOOGLE_STYLE.strip())
    # No line of the corpus looks like code to the measure the benchmark uses.
    assert not any(re.match(r"\s{4}|>>>|\.\.\.", line) for line in doc["text"].split("\n"))


def test_an_embedded_corpus_of_an_older_recipe_is_rebuilt(tmp_path, monkeypatch):
    module = tmp_path / "mod.py"
    module.write_text("".join(f'def f{i}():\n    """{NUMPY_STYLE}"""\n'.replace("mean", f"mean{i}") for i in range(60)))
    monkeypatch.setattr(pydocs, "_modules", lambda: [(f"pkg:mod{i}.py", module) for i in range(1)])
    monkeypatch.setattr(pydocs, "_cache_key", lambda: f"test-{tmp_path.name}")
    monkeypatch.setattr(
        pydocs,
        "load",
        lambda: __import__("datasets").DatasetDict(
            {"train": __import__("datasets").Dataset.from_list(list(pydocs.documents()))}
        ),
    )
    root = tmp_path / "corpora"
    built, _ = prepare(SourceSpec(), TokenizerSpec("char"), root=root)
    source = built.meta["source"]
    assert source["recipe"] == pydocs.RECIPE and 0 < source["kept_chars"] < source["raw_docstring_chars"]
    assert not outdated(built.path)
    _, reused = prepare(SourceSpec(), TokenizerSpec("char"), root=root)
    assert reused
    meta = json.loads((built.path / "meta.json").read_text())
    meta["source"]["recipe"] = pydocs.RECIPE - 1
    (built.path / "meta.json").write_text(json.dumps(meta))
    assert outdated(built.path)
    rebuilt, reused = prepare(SourceSpec(), TokenizerSpec("char"), root=root)
    assert not reused and rebuilt.meta["source"]["recipe"] == pydocs.RECIPE
