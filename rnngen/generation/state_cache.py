"""States of one model after token prefixes, kept within a bound in bytes: a conversation or a shared document is
read once, and a later text that starts with the same tokens resumes from the longest prefix kept.

A recurrent model's memory of a text is a fixed-size state (a 2x512 LSTM's is 8 KB), whatever the text's length, so
a prefix of ten thousand tokens costs what a prefix of ten does. The prefixes are the keys of a radix tree (runs of
tokens that no two keys tell apart share one edge), each entry the state after its prefix (no logits: a resumed read
reads at least one more token, which gives them). Entries leave least recently used first once the states, the
edges' tokens and the nodes pass `max_bytes`; an entry larger than the bound alone is not kept.

Keys are token ids, never text: a text read with more text after it may tokenize its end differently ("hel" then
"hello"), and a match on the new text's own tokens can only resume a state of exactly those tokens. Which prefixes
are kept (the last token dropped, so that a longer text's different last token still finds the rest) is the
reader's choice (`rnngen.generation.reading`).

One cache serves one model: a state is meaningful for the weights that made it alone. The methods hold a lock, so a
cache may be read from several threads.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnngen.models.state import map_state

TOKEN_BYTES = 4  # an edge holds its tokens as int32
NODE_BYTES = 200  # a node's Python objects (its dict of children, its edge array's header), counted with the rest


def state_bytes(state: Any) -> int:
    """The bytes a state's arrays hold (NumPy arrays or torch tensors)."""
    sizes: list[int] = []
    map_state(state, lambda part: sizes.append(int(part.nbytes)))
    return sum(sizes)


class _Node:
    __slots__ = ("tokens", "parent", "children", "state", "size")

    def __init__(self, tokens: np.ndarray, parent: _Node | None):
        self.tokens = tokens  # the edge from the parent: the tokens between the parent's prefix and this one's
        self.parent = parent
        self.children: dict[int, _Node] = {}
        self.state: Any = None
        self.size = 0  # the bytes of `state`


class StateCache:
    """States after token prefixes of one model, `max_bytes` at most (0 keeps nothing).

    `longest(ids)` finds the longest kept prefix of `ids` shorter than them; `keep(ids, state)` keeps the state
    after `ids`. `bytes` and `entries` say what it holds.
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._root = _Node(np.empty(0, np.int32), None)
        self._recent: collections.OrderedDict[int, _Node] = collections.OrderedDict()  # id -> node, oldest first
        self._lock = threading.Lock()

    @property
    def entries(self) -> int:
        """The states kept."""
        return len(self._recent)

    def longest(self, ids: Sequence[int]) -> tuple[int, Any]:
        """The longest kept prefix of `ids` shorter than all of them: its length and the state after it, or (0, None).
        A hit makes the entry the most recently used."""
        key = np.asarray(ids, np.int32)
        with self._lock:
            node, depth, best = self._root, 0, (0, None)
            while depth < len(key):
                child = node.children.get(int(key[depth]))
                if child is None or not np.array_equal(child.tokens, key[depth : depth + len(child.tokens)]):
                    break
                node, depth = child, depth + len(child.tokens)
                if node.state is not None and depth < len(key):
                    best = (depth, node)
            if best[1] is None:
                return 0, None
            self._recent.move_to_end(id(best[1]))
            return best[0], best[1].state

    def keep(self, ids: Sequence[int], state: Any) -> None:
        """Keep `state`, the model's state after `ids` (at least one), as the most recently used entry; the least
        recently used leave while the cache holds more than its bound."""
        size = state_bytes(state)
        if not ids or size + len(ids) * TOKEN_BYTES + NODE_BYTES > self.max_bytes:
            return
        key = np.asarray(ids, np.int32)
        with self._lock:
            node = self._insert(key)
            if node.state is None:
                node.state, node.size = state, size
                self.bytes += size
            self._recent[id(node)] = node
            self._recent.move_to_end(id(node))
            while self.bytes > self.max_bytes and self._recent:
                self._evict(next(iter(self._recent.values())))

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            for node in list(self._recent.values()):
                self._evict(node)

    def _insert(self, key: np.ndarray) -> _Node:
        """The node of `key`, made (and an edge split) where the tree has none."""
        node, depth = self._root, 0
        while depth < len(key):
            child = node.children.get(int(key[depth]))
            if child is None:
                leaf = _Node(key[depth:].copy(), node)
                node.children[int(key[depth])] = leaf
                self.bytes += len(leaf.tokens) * TOKEN_BYTES + NODE_BYTES
                return leaf
            rest = key[depth : depth + len(child.tokens)]
            differ = np.flatnonzero(child.tokens[: len(rest)] != rest)
            same = int(differ[0]) if len(differ) else len(rest)
            if same < len(child.tokens):  # the key leaves (or ends inside) the edge: split it there
                middle = _Node(child.tokens[:same].copy(), node)
                child.tokens, child.parent = child.tokens[same:].copy(), middle
                middle.children[int(child.tokens[0])] = child
                node.children[int(middle.tokens[0])] = middle
                self.bytes += NODE_BYTES
                child = middle
            node, depth = child, depth + same
        return node

    def _evict(self, node: _Node) -> None:
        del self._recent[id(node)]
        self.bytes -= node.size
        node.state, node.size = None, 0
        # Nodes left with no entry and no children go; a node left with no entry and one child joins it.
        while node is not self._root and node.state is None and not node.children:
            parent = node.parent
            del parent.children[int(node.tokens[0])]
            self.bytes -= len(node.tokens) * TOKEN_BYTES + NODE_BYTES
            node = parent
        if node is not self._root and node.state is None and len(node.children) == 1:
            (child,) = node.children.values()
            child.tokens, child.parent = np.concatenate([node.tokens, child.tokens]), node.parent
            node.parent.children[int(child.tokens[0])] = child
            self.bytes -= NODE_BYTES
