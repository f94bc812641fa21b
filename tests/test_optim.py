"""The optimizer's parameter groups: weight decay reaches weight matrices, never biases."""

from __future__ import annotations

import pytest
import torch

from rnngen.config import ModelConfig, TrainConfig
from rnngen.models import build
from rnngen.training.optim import adamw


@pytest.mark.parametrize("kind", ["lstm", "gru", "mingru"])
@pytest.mark.parametrize("tie", [True, False])
def test_weight_decay_reaches_matrices_only(kind, tie):
    model = build(ModelConfig(kind=kind, vocab_size=30, embed=8, hidden=12, layers=2, tie=tie))
    optimizer = adamw(model, TrainConfig(steps=1, weight_decay=0.1), torch.device("cpu"))
    decay, keep = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in keep["params"]}
    assert "embedding.weight" in decayed and all("bias" not in name for name in decayed)
    assert all("bias" in name or "norm" in name for name in kept)
    assert kind == "mingru" or any("weight_hh" in name for name in decayed)
    assert any("bias" in name for name in kept)
    # Every parameter is trained, exactly once (a tied head shares the embedding's tensor).
    assert sorted(decayed | kept) == sorted(names.values()) and not decayed & kept
