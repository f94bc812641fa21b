"""The learning-rate schedule a run follows."""

from __future__ import annotations

import pytest

from rnngen.config import TrainConfig
from rnngen.training.schedule import Budget, lr_at


def test_the_rate_peaks_at_the_end_of_warmup_and_then_decays_smoothly():
    cfg = TrainConfig(lr=1e-3, warmup=50, steps=100, time_budget=None, min_lr_ratio=0.1)
    rates = [lr_at(step, step / cfg.steps, cfg) for step in range(cfg.steps + 1)]
    assert rates[49] == pytest.approx(1e-3)
    # No step down where warmup hands over to the cosine: the decay starts from the peak.
    assert rates[50] == pytest.approx(1e-3)
    assert max(abs(a - b) for a, b in zip(rates[49:], rates[50:])) < 1e-3 * 0.05
    assert rates[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates[50:], rates[51:]))


def test_a_time_budget_decays_over_what_is_left_after_warmup():
    cfg = TrainConfig(lr=2e-3, warmup=10, steps=None, time_budget=100.0)
    # At a steady 1 s per step, warmup ends at 10% of the budget: the decay is halfway at 55%.
    assert lr_at(10, 0.10, cfg) == pytest.approx(2e-3)
    assert lr_at(55, 0.55, cfg) == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(100, 1.0, cfg) == pytest.approx(2e-4)


def test_a_time_budget_expects_its_length_from_the_pace_of_the_timed_steps():
    budget = Budget(TrainConfig(steps=None, time_budget=180.0))
    assert budget.expected_steps() is None  # nothing timed yet
    for _ in range(10):
        budget.tick()
    budget.add_seconds(1.0)  # 10 steps in 1 s: 1800 steps in 180 s
    assert budget.expected_steps() == pytest.approx(1800)
    for _ in range(9):
        budget.tick()  # the clock moves at the next log step; until then the pace is the one known
    assert budget.expected_steps() == pytest.approx(1800)
    both = Budget(TrainConfig(steps=500, time_budget=180.0), step=10, seconds=1.0)
    assert both.expected_steps() == 500  # whichever ends first
