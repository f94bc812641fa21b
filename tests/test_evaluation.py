"""`rnngen evaluate`: every token of the split it names, whatever the batch size, under that split's names."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnngen
from rnngen.config import ModelConfig
from rnngen.models import build
from rnngen.training import evaluate as evaluation
from rnngen.training.distributed import World
from rnngen.training.evaluate import next_token_loss, score

VOCAB, TOKENS = 50, 4001  # an awkward count: rows never divide it


def context_free_model() -> torch.nn.Module:
    """An RNN whose recurrent weights are zero: each token's loss depends on the token before it alone, so the
    loss over a split is the same however it is cut into streams, if and only if each token is scored once."""
    torch.manual_seed(0)
    model = build(ModelConfig(kind="rnn", vocab_size=VOCAB, embed=8, hidden=8, layers=1))
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()
    return model


@pytest.mark.parametrize("rows", [1, 32, 256])
def test_every_token_after_the_first_is_scored_exactly_once(rows, monkeypatch):
    # A short warm-up, so that this small split fills 32 and 256 streams and leaves a tail.
    monkeypatch.setattr(evaluation, "WARMUP", 8)
    monkeypatch.setattr(evaluation, "ROW_SHARE", 1)
    model, cpu = context_free_model(), torch.device("cpu")
    tokens = np.random.default_rng(0).integers(0, VOCAB, TOKENS)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens[None, :-1]), None)
        expected = next_token_loss(logits, torch.from_numpy(tokens[None, 1:])).item()
    told = []
    whole = score(model, tokens, TOKENS, rows, 7, 0, cpu, progress=lambda done, total: told.append((done, total)))
    assert whole["tokens"] == TOKENS - 1 and whole["loss"] == pytest.approx(expected, rel=1e-5)
    assert told[-1] == (TOKENS - 1, TOKENS - 1) and not whole["bounded"]
    # Two processes share the streams (the tail is the first's): their sums make the whole.
    ranks = [score(model, tokens, TOKENS, rows, 7, 0, cpu, World(rank, 2))["loss"] for rank in (0, 1)]
    assert sum(ranks) == pytest.approx(whole["loss"], rel=1e-5)


def test_whole_split_is_every_token_and_one_figure_at_any_batch_size(run_cli, trained, tmp_path):
    from rnngen.data.reading import Corpus

    predicted = len(Corpus.find(tmp_path / "corpora", "notes").tokens("val")) - 1
    figures = []
    for batch in ("1", "32", "256"):
        result = run_cli("evaluate", "--checkpoint", trained, "--max-tokens", "0", "--batch-size", batch, "--json")
        assert result.exit_code == 0, result.output
        figures.append(json.loads(result.output))
    assert [row["val_tokens"] for row in figures] == [predicted] * 3
    bpc = [row["val_bpc"] for row in figures]
    assert max(bpc) == pytest.approx(min(bpc), rel=1e-5)


def test_figures_are_named_after_the_split(run_cli, trained):
    result = run_cli("evaluate", "--checkpoint", trained, "--split", "train", "--max-tokens", "3000", "--json")
    printed = json.loads(result.output)
    assert {"train_loss", "train_ppl", "train_bpc", "train_tokens"} <= set(printed) and "val_bpc" not in printed
    figures = rnngen.evaluate(trained, split="train", max_tokens=3000, device="cpu")
    assert figures.to_dict() == printed and figures.train_bpc == figures.bpc == printed["train_bpc"]
    with pytest.raises(AttributeError, match="train_bpc"):
        _ = figures.val_bpc
