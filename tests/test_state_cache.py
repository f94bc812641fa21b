"""A conversation is a state: one priming path whose bits never depend on how a document is cut, a cache of the
states after token prefixes (bounded in bytes, least recently used out first), and the Python API and the chat that
resume from them.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import sample_text
from rich.console import Console
from test_numpy_inference import IDS, KINDS, model_of

from rnngen.cli.chat import ChatSession
from rnngen.config import SampleConfig
from rnngen.data.tokenizer import Tokenizer, train
from rnngen.generation.completer import Completer
from rnngen.generation.numpy_lm import NumpyLM
from rnngen.generation.reading import Reading
from rnngen.generation.state_cache import NODE_BYTES, TOKEN_BYTES, StateCache, state_bytes
from rnngen.generation.torch_lm import TorchLM
from rnngen.models.state import map_state

DOCUMENT = sample_text(3_000, seed=3)


def parts(state) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    map_state(state, lambda part: found.append(part.numpy() if isinstance(part, torch.Tensor) else part))
    return found


def same_bits(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(parts(a), parts(b), strict=True))


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(train([sample_text(20_000)], "unigram", 400))


@pytest.fixture(scope="module")
def completer(tok) -> Completer:
    # Wide enough that BLAS rounds a product of many rows apart from one of a few, as real models do.
    return Completer(NumpyLM.from_module(model_of("lstm", "fused", tok.vocab_size, embed=64, hidden=96)), tok)


@pytest.mark.parametrize(("kind", "impl"), KINDS, ids=IDS)
def test_a_document_read_at_once_in_slices_or_resumed_gives_the_same_bits(kind, impl):
    lm = NumpyLM.from_module(model_of(kind, impl, 40, embed=48, hidden=96))
    ids = np.random.default_rng(0).integers(0, 40, 300).tolist()
    logits, state = lm.prime(ids)
    for cuts in ([1], [3, 64], [63, 64, 65, 200], [17, 130, 299]):
        resumed, at = None, 0
        for cut in [*cuts, len(ids)]:
            piece_logits, resumed = lm.prime(ids[at:cut], resumed, at)
            at = cut
        assert np.array_equal(piece_logits, logits) and same_bits(resumed, state)
    sliced = Reading(lm, ids, len(ids) - 1)
    while not sliced.done:  # as the server's scheduler reads, between two steps of the batch
        sliced.advance(64)
    assert np.array_equal(sliced.memory.logits, logits) and same_bits(sliced.memory.state, state)


def test_on_torch_states_are_exact_at_the_multiples_it_keeps():
    model = model_of("lstm", "fused", 40, embed=48, hidden=96)
    lm = TorchLM(model)
    ids = np.random.default_rng(1).integers(0, 40, 300).tolist()
    whole = Reading(lm, ids, 0)
    whole.advance()
    cache = StateCache(10**7)
    Reading(lm, ids[:150], 128, cache).advance()  # a multiple of exact_every, where torch's states are exact
    resumed = Reading(lm, ids, 0, cache)
    resumed.advance()
    assert resumed.cached == 128
    assert torch.equal(resumed.memory.logits, whole.memory.logits) and same_bits(
        resumed.memory.state, whole.memory.state
    )


def test_the_cache_finds_the_longest_kept_prefix_and_never_the_whole_key():
    cache = StateCache(10**6)
    state = np.zeros((2, 1, 8), np.float32)
    for key in ([1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 9], [7]):
        cache.keep(key, state + len(key))
    assert cache.longest([1, 2, 3, 4, 5, 6])[0] == 5
    assert cache.longest([1, 2, 3, 4, 5])[0] == 3  # resuming reads at least one token, which gives the logits
    assert cache.longest([1, 2, 3, 4])[0] == 3 and cache.longest([1, 2, 9, 9])[0] == 3
    assert cache.longest([1, 2]) == (0, None) and cache.longest([8, 1]) == (0, None) and cache.entries == 4


def test_the_cache_stays_within_its_bound_dropping_the_least_recently_used():
    state = np.zeros((2, 1, 256), np.float32)  # 2 KB
    entry = state_bytes(state) + 10 * TOKEN_BYTES + NODE_BYTES
    cache = StateCache(3 * entry + 100)
    keys = [[k] * 10 for k in range(5)]
    for key in keys[:3]:
        cache.keep(key, state)
    assert cache.longest(keys[0] + [1])[0] == 10  # used: now the most recent
    cache.keep(keys[3], state)
    assert cache.bytes <= cache.max_bytes and cache.entries == 3
    assert cache.longest(keys[1] + [1]) == (0, None)  # the least recently used went first
    assert cache.longest(keys[0] + [1])[0] == 10 and cache.longest(keys[3] + [1])[0] == 10
    for key in keys:  # prefixes sharing a path split and join its edges: the count of bytes follows
        cache.keep(key[:5] + [99] + key[5:], state)
    assert cache.bytes <= cache.max_bytes
    cache.clear()
    assert cache.bytes == 0 and cache.entries == 0
    off = StateCache(0)
    off.keep([1, 2], state)
    assert off.entries == 0 and off.bytes == 0


def test_a_longer_text_resumes_before_the_last_token_whatever_its_spelling_there(completer, tok):
    cache = StateCache(10**8)
    text = DOCUMENT[:1000] + "the mod"
    longer = text + "el reads"
    short_ids, long_ids = completer.document(tok.encode(text)), completer.document(tok.encode(longer))
    assert long_ids[: len(short_ids)] != short_ids  # "mod" is spelled otherwise once "el" follows
    first = completer.reading(text, cache)
    first.advance()
    again = completer.reading(longer, cache)
    again.advance()
    uncached = completer.reading(longer)
    uncached.advance()
    assert 0 < again.cached == first.keep_at and long_ids[: again.cached] == short_ids[: again.cached]
    assert np.array_equal(again.memory.logits, uncached.memory.logits)


def test_complete_after_a_read_writes_the_whole_texts_completion_reading_only_the_rest(completer, monkeypatch):
    state = completer.read(DOCUMENT)
    read = []
    real = completer.lm.read
    monkeypatch.setattr(completer.lm, "read", lambda ids, *args: (read.append(len(ids)), real(ids, *args))[1])
    for question, seed in (("\nQuestion: why does the model", 1), (" and", 2), ("", 3)):
        cfg = SampleConfig(max_tokens=30, seed=seed)
        read.clear()
        resumed = completer.complete(question, cfg, after=state).text()
        assert sum(read) <= len(completer.tokenizer.encode(question)) + 2
        assert resumed == completer.complete(DOCUMENT + question, cfg).text()
    more = completer.read(" more text", after=state)
    assert more.text == DOCUMENT + " more text" and same_bits(more.memory.state, completer.read(more.text).memory.state)


def test_chat_keep_reads_each_turn_once_and_writes_what_the_whole_running_text_gets(completer, monkeypatch):
    console = Console(file=io.StringIO(), width=200)
    cfg = SampleConfig(max_tokens=20, temperature=0.0)
    session = ChatSession(completer, cfg, console, keep=True)
    read = []
    real = completer.lm.read
    monkeypatch.setattr(completer.lm, "read", lambda ids, *args: (read.append(len(ids)), real(ids, *args))[1])
    running = ""
    for line in ("the model reads", " a token and", " the gradient"):
        read.clear()
        before = session.memory.text if session.memory else ""
        # What a turn reads again of the text before it: its last word, which the line may spell otherwise.
        again = len(session.memory.ids) - session.memory.resume[0] if session.memory else 0
        session.turn(line)
        turn_read = sum(read)
        reply = session.memory.text[len(before) + len(line) :]
        assert reply == completer.complete(running + line, cfg).text()  # greedy: the whole text's completion
        running += line + reply
        assert session.memory.text == running
        # This turn read its line and its reply (again, as a prompt is read, from the line's last word), and not
        # what came before.
        encode = completer.tokenizer.encode
        assert turn_read <= again + len(encode(line)) + len(encode(line + reply)) + 1
