"""`rnngen.evaluate`: a checkpoint's loss, perplexity and bits per character on a corpus split, the library
behind `rnngen evaluate`.

    import rnngen
    result = rnngen.evaluate("notes-lstm")                      # the run's corpus, its validation split
    result.bpc, result.loss, result.ppl                          # also as result.val_bpc, ... (`--json`'s names)
    rnngen.evaluate("hf:alice/notes-lstm", corpus="notes", split="train", max_tokens=0).train_bpc  # all of it
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rnngen.errors import RnngenError, param
from rnngen.store.runs import FIGURES, figure_key, named

SPLITS = ("val", "train")
# Streams read side by side (at most: a short split is read in fewer): each but the first reads the context before
# it unscored (rnngen.training.evaluate.WARMUP), so they change the figures only by context older than that.
BATCH_SIZE = 32
# The tokens a pass reads of each stream at a time: at most MAX_SEQ_LEN, and few enough that a window's scores
# (streams x tokens x vocabulary floats) stay under WINDOW_SCORES, so memory is bounded whatever the vocabulary.
# The figures do not depend on it: the state is carried from one window to the next.
MAX_SEQ_LEN, WINDOW_SCORES = 256, 1 << 24
# Tokens read by default: a few minutes on a CPU for a small model, whatever the split's size (0: all of it).
MAX_TOKENS = 1_000_000


@dataclass(frozen=True)
class Evaluation:
    """A checkpoint's figures on a corpus split: `loss` (nats per token), `ppl` (perplexity per token), `bpc` (bits
    per character, what `Model.score` gives for one text), `tokens` (the tokens predicted: every one after the
    first of the part read) and `bounded` (only the first `max_tokens` tokens were read). They are also read under
    the names `to_dict` gives them, those of the split (`val_bpc`, or `train_bpc` for the training split)."""

    checkpoint: str
    corpus: str
    split: str
    loss: float
    ppl: float
    bpc: float
    tokens: int
    bounded: bool

    def to_dict(self) -> dict[str, Any]:
        """The figures as `rnngen evaluate --json` prints them: named after the split (`val_bpc`, `train_bpc`)."""
        return named(self.split, dataclasses.asdict(self))

    def __getattr__(self, name: str) -> Any:
        # `val_bpc` (`train_bpc` on the training split): a figure under the name `to_dict` gives it. Only names not
        # found otherwise arrive here; copy and pickle ask before `split` is set.
        split = self.__dict__.get("split")
        for figure in FIGURES:
            if split and name == figure_key(split, figure):
                return getattr(self, figure)
        names = f": this {split} split's are {', '.join(figure_key(split, f) for f in FIGURES)}" if split else ""
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}{names}")


def evaluate(
    checkpoint: str | os.PathLike | None = None,
    *,
    corpus: str | None = None,
    split: str = "val",
    max_tokens: int = MAX_TOKENS,
    batch_size: int = BATCH_SIZE,
    seq_len: int | None = None,
    device: str = "auto",
    corpora: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Loss, perplexity and bits per character of `checkpoint` on `split` ("val" or "train") of `corpus`.

    `checkpoint` is what `rnngen.load` takes, or None for the latest run under `checkpoints`; `corpus` is a
    prepared corpus encoded with the run's tokenizer, by default the one it was trained on. `max_tokens` reads
    the first that many tokens only (0: the whole split; `bounded` in the result says whether the bound cut it).
    The state is carried through `batch_size` streams read `seq_len` tokens at a time (None: `window_length`),
    on `device` ("auto", "cpu", "cuda" or "mps"); `progress(done, total)` is told the tokens predicted so far.
    """
    if split not in SPLITS:
        raise RnngenError(f"unknown {param('split')} {split!r}: choose {' or '.join(SPLITS)}")
    if max_tokens < 0 or max_tokens == 1:
        raise RnngenError(
            f"{param('max_tokens')} {max_tokens} leaves no token to predict (the first is context only): "
            "pass 2 or more, or 0 for the whole split"
        )
    for name, value in (("batch_size", batch_size), ("seq_len", 1 if seq_len is None else seq_len)):
        if value < 1:
            raise RnngenError(f"{param(name)} must be 1 or more, got {value}")
    import torch

    from rnngen.data.reading import Corpus, corpus_of
    from rnngen.generation.loading import pick_device
    from rnngen.models.checkpoint import load_model
    from rnngen.store.locations import checkpoints_dir, corpora_dir
    from rnngen.store.resolve import require_tokenizer, resolve_checkpoint
    from rnngen.store.runs import require_same_tokenizer
    from rnngen.training.evaluate import score

    where = torch.device(pick_device(device))  # first: an unknown device is told before anything is read
    run, path = resolve_checkpoint(None if checkpoint is None else str(checkpoint), checkpoints_dir(checkpoints))
    require_tokenizer(run)
    model, tok, ckpt = load_model(run, path, where)
    root = corpora_dir(corpora)
    data = Corpus.find(root, corpus) if corpus else corpus_of(ckpt.corpus, root)
    require_same_tokenizer(
        f"corpus {data.name}",
        data.meta["tokenizer"],
        {"sha256": tok.sha256, "vocab_size": tok.vocab_size},
        f"pick a corpus prepared with the tokenizer of {run.name}",
    )
    figures = score(
        model,
        data.tokens(split),
        data.characters(split),
        batch_size,
        seq_len or window_length(batch_size, data.vocab_size),
        max_tokens,
        where,
        unknown_bytes=data.unknown_bytes(split),
        progress=progress,
    )
    return Evaluation(checkpoint=str(path), corpus=data.name, split=split, **figures)


def window_length(batch_size: int, vocab_size: int) -> int:
    """The tokens read of each stream at a time when none is asked for (see WINDOW_SCORES)."""
    return max(1, min(MAX_SEQ_LEN, WINDOW_SCORES // (batch_size * vocab_size)))
