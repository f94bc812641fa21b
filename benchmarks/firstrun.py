"""The first run: does the default beat the loop a user would write, and does it read like English?

(a) Quality at equal time. In one process and on the same split, the plain loop a user would write
from pytorch/examples' word_language_model (embedding, 2x384 nn.LSTM, linear head, uniform ±0.1
initialisation, batch 32, window 64, AdamW 4e-3 with cosine decay, clip 1.0, carried state, no
dropout) and rnngen's `cpu` preset, which sizes its model for the budget on this machine, each train for the
same wall time, at each budget of `--clock` (seconds); both are scored by the same evaluation, in bits per character
over the whole held-out text (the last 10%) read as one stream. Target: rnngen ahead by at least 0.10 bits/char with
the char tokenizer and with the default one (unigram). `OMP_NUM_THREADS=1` pins both sides to one thread, as a
machine half as fast sees it.

(b) The first-run check. `rnngen train` exactly as the README's first command, then 20 completions
of the README's prompt at the default sampling settings (seeds 1-20, 60 tokens). Scored: the share
of alphabetic words found in an English word list (targets >= 92%), and the share of characters on
prose lines, not on `>>>`/`...` lines or code indented by 4+ spaces (>= 95%).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import sweep
from benchmarks.common import prepared
from rnngen.config import PRESETS
from rnngen.training.evaluate import score

PROMPT = "Studying Deep Learning is really"
WORDS = Path("/usr/share/dict/words")
MARGIN = 0.10  # bits/char by which the preset must beat the plain loop


class PlainLM(nn.Module):
    """pytorch/examples' RNNModel, LSTM, untied, no dropout, with its initialisation."""

    def __init__(self, vocab: int, size: int = 384, layers: int = 2):
        super().__init__()
        self.encoder = nn.Embedding(vocab, size)
        self.rnn = nn.LSTM(size, size, layers, batch_first=True)
        self.decoder = nn.Linear(size, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, ids: torch.Tensor, state=None):
        out, state = self.rnn(self.encoder(ids), state)
        return self.decoder(out), state


def own_vocabulary(corpus) -> tuple[np.ndarray, np.ndarray, int]:
    """(train ids, held-out ids, vocabulary size) as a hand-written loop sees the text. For the char tokenizer,
    the symbols the training text holds (what `sorted(set(text))` gives), and one more id for any held-out
    symbol it never saw: rnngen's char vocabulary also holds 256 byte pieces that tiny shakespeare never uses,
    and the plain loop must not pay for them. For a subword tokenizer, the same sentencepiece ids on both sides."""
    train = np.asarray(corpus.tokens("train"), dtype=np.int64)
    val = np.asarray(corpus.tokens("val"), dtype=np.int64)
    if corpus.meta["tokenizer"]["type"] != "char":
        return train, val, corpus.vocab_size
    used = np.unique(train)
    index = np.full(corpus.vocab_size, len(used), dtype=np.int64)
    index[used] = np.arange(len(used))
    return index[train], index[val], len(used) + 1


def held_out_bpc(corpus, tokens: np.ndarray | None = None) -> Callable[[nn.Module], float]:
    """Bits per character of a model over the whole held-out text (`tokens`, by default the corpus's own ids)
    read as one stream, the state carried from its first token to its last. Both sides get this score: scored
    in rows of their own batch size, each row starting from a zero state, the plain loop (32 rows) would pay
    for twice as many cold starts as the preset (16)."""
    held_out = corpus.tokens("val") if tokens is None else tokens

    def bpc(model: nn.Module) -> float:
        return score(model, held_out, corpus.characters("val"), 1, 64, None, torch.device("cpu"))["bpc"]

    return bpc


def plain_loop(
    corpus,
    seconds: float | None,
    batch: int = 32,
    window: int = 64,
    lr: float = 4e-3,
    steps: int | None = None,
) -> dict[str, Any]:
    """The reference, on the text's own vocabulary: batchify, carried state, AdamW with cosine decay over the
    budget, `seconds` of wall time or `steps` (equal tokens, whatever the machine's speed)."""
    torch.manual_seed(1337)
    train, val, vocab = own_vocabulary(corpus)
    model = PlainLM(vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rows = torch.from_numpy(train[: len(train) // batch * batch].reshape(batch, -1))
    state, step, spent, start = None, 0, 0.0, 0

    def progress() -> float:
        return step / steps if steps else spent / seconds

    while progress() < 1.0:
        began = time.perf_counter()
        if start + window + 1 > rows.size(1):
            state, start = None, 0
        chunk = rows[:, start : start + window + 1]
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * progress()))
        logits, state = model(chunk[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = tuple(s.detach() for s in state)
        start += window
        step += 1
        spent += time.perf_counter() - began
    return {
        "steps": step,
        "seconds": spent,
        "tokens": step * batch * window,
        "vocab": vocab,
        "tokens_per_s": step * batch * window / spent,
        "val_bpc": held_out_bpc(corpus, val)(model),
        "train_loss_last": loss.item(),
    }


def compare(corpus, seconds: float | None, tokens: int | None) -> dict[str, Any]:
    """The plain loop and the cpu preset on `corpus`, `seconds` or `tokens` each: their figures and the lead."""
    plain_batch, window = 32, 64
    preset_tokens_per_step = PRESETS["cpu"].train.batch_size * PRESETS["cpu"].train.seq_len
    reference = plain_loop(
        corpus, seconds, plain_batch, window, steps=tokens // (plain_batch * window) if tokens else None
    )
    ours = sweep.point(
        corpus,
        {"name": "cpu preset"},
        seconds,
        tokens // preset_tokens_per_step if tokens else None,
        "cpu",
        held_out_bpc(corpus),
    )  # as the sweep trains it
    lead = reference["val_bpc"] - ours["val_bpc"]
    return {
        "tokenizer": f"{corpus.meta['tokenizer']['type']} {corpus.vocab_size}",
        "plain_vocab": reference["vocab"],
        "plain_steps": reference["steps"],
        "plain_tokens": reference["tokens"],
        "plain_tokens_per_s": reference["tokens_per_s"],
        "plain_val_bpc": reference["val_bpc"],
        "rnngen_shape": f"{ours['model']['layers']}x{ours['model']['hidden']}, batch {ours['train']['batch_size']}",
        "rnngen_paces": {o["width"]: round(o["tokens_per_s"]) for o in (ours["sizing"] or {}).get("options", [])},
        "rnngen_steps": ours["steps"],
        "rnngen_tokens": ours["tokens"],
        "rnngen_tokens_per_s": ours["tokens_per_s"],
        "rnngen_val_bpc": ours["val_bpc"],
        "lead_bpc": lead,
    }


def equal_time(text: Path, root: Path, clocks: list[float], tokenizers: list[str]) -> list[dict[str, Any]]:
    """Part (a) at equal wall time, what a user asks on their own machine: the plain loop and the cpu preset (sized
    for each budget, rnngen.training.sizing) back to back, for each budget in `clocks` (seconds) and tokenizer."""
    rows = []
    for kind in tokenizers:
        corpus = prepared(root, str(text), kind, None, f"{text.stem}-{kind}")
        for seconds in clocks:
            row = compare(corpus, seconds, None)
            rows.append(
                {
                    "benchmark": "firstrun-equal-time",
                    "corpus": text.stem,
                    "seconds": seconds,
                    "threads": torch.get_num_threads(),
                    **row,
                    "pass": row["lead_bpc"] >= MARGIN,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def token_count(text: str) -> int:
    """`0.5M`, `500k`, `2000000`: a budget in tokens."""
    scale = {"k": 10**3, "M": 10**6}.get(text[-1:], 1)
    return round(float(text[:-1] if scale > 1 else text) * scale)


def equal_tokens(text: Path, root: Path, budgets: list[int], tokenizers: list[str]) -> list[dict[str, Any]]:
    """Part (a) at equal tokens, for each budget and tokenizer: what a slower or faster machine gets, measured
    on this one. Target: a lead of at least 0.05 bits/char at every budget, 0.10 from 2M tokens on."""
    rows = []
    for kind in tokenizers:
        corpus = prepared(root, str(text), kind, None, f"{text.stem}-{kind}")
        for budget in budgets:
            row = compare(corpus, None, budget)
            target = MARGIN if budget >= 2_000_000 else MARGIN / 2
            rows.append(
                {
                    "benchmark": "firstrun-equal-tokens",
                    "budget_tokens": budget,
                    **row,
                    "pass": row["lead_bpc"] >= target,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def english_words() -> set[str]:
    if not WORDS.is_file():
        raise SystemExit(f"{WORDS} is missing: install it with `apt-get update && apt-get install -y wamerican-large`")
    return {line.strip().lower() for line in WORDS.open(encoding="utf-8", errors="replace")}


def word_share(texts: list[str], words: set[str]) -> float:
    """The share of alphabetic words (letters only, after stripping punctuation) that are English."""
    found = [w for text in texts for w in (t.strip(".,;:!?\"'()[]{}`*") for t in text.split()) if w.isalpha()]
    return sum(w.lower() in words for w in found) / max(1, len(found))


def prose_share(texts: list[str]) -> float:
    """The share of characters on prose lines: not a `>>>`/`...` prompt, not indented 4+ spaces."""
    prose = total = 0
    for text in texts:
        for line in text.splitlines():
            total += len(line)
            if not line.lstrip().startswith((">>>", "...")) and not line.startswith(("    ", "\t")):
                prose += len(line)
    return prose / max(1, total)


def first_run(seconds: float | None) -> list[dict[str, Any]]:
    """Part (b): `rnngen train` then `rnngen complete PROMPT --seed S --max-tokens 60`, S = 1..20."""
    words = english_words()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "RNNGEN_CORPORA": f"{folder}/corpora", "RNNGEN_CHECKPOINTS": f"{folder}/checkpoints"}
        rnngen = [sys.executable, "-m", "rnngen"]
        began = time.perf_counter()
        subprocess.run(
            rnngen + ["train", "--plain"] + (["--time", str(seconds)] if seconds else []),
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        trained = time.perf_counter() - began
        texts = [
            subprocess.run(
                rnngen + ["complete", PROMPT, "--seed", str(seed), "--max-tokens", "60", "--plain"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for seed in range(1, 21)
        ]
    # Scored on the completions alone: the prompt's own words would count as English for free.
    english, prose = word_share(texts, words), prose_share(texts)
    return [
        {
            "benchmark": "firstrun-english",
            "train_wall_s": trained,
            "english_words": english,
            "prose_chars": prose,
            "target_english": 0.92,
            "target_prose": 0.95,
            "pass": english >= 0.92 and prose >= 0.95,
            "samples": [PROMPT + text for text in texts],
        }
    ]


def run(
    text: Path,
    root: Path,
    seconds: float,
    tokenizers: list[str],
    parts: str = "ab",
    budgets: list[int] | None = None,
    clocks: list[float] | None = None,
) -> list[dict[str, Any]]:
    """Part (a) at equal time (`clocks`, seconds each; by default `seconds`), or at each of `budgets` (tokens)
    when given; then part (b)."""
    rows = []
    if "a" in parts:
        rows += (
            equal_tokens(text, root, budgets, tokenizers)
            if budgets
            else equal_time(text, root, clocks or [seconds], tokenizers)
        )
    if "b" in parts:
        rows += first_run(None if seconds == 180.0 else seconds)
    return rows
