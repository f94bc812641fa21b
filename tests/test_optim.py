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


def test_an_optimizer_state_saved_with_one_group_resumes_into_the_two_groups():
    # Runs trained by rnngen 0.1.0 saved AdamW with every tensor in one group.
    from rnngen.training import resume

    model = build(ModelConfig(kind="lstm", vocab_size=20, embed=8, hidden=8, layers=2, tie=False))
    old = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 20, (2, 5)))[0].sum().backward()
    old.step()
    new = adamw(model, TrainConfig(steps=10, time_budget=None, weight_decay=0.01), torch.device("cpu"))
    new.load_state_dict(resume.regrouped(old.state_dict(), new, model))
    for param in model.parameters():
        assert torch.equal(new.state[param]["exp_avg"], old.state[param]["exp_avg"])
        assert torch.equal(new.state[param]["exp_avg_sq"], old.state[param]["exp_avg_sq"])
    assert [group["weight_decay"] for group in new.param_groups] == [0.01, 0.0]
