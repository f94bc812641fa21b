"""The one rule that names a result: solved, partly, or at baseline.

For a loss (adding: MSE; copy: cross-entropy), `solved` is below 10% of the memoryless baseline and `at baseline`
is above 90% of it (no better than ignoring the sequence, or worse); for recall's accuracy, `solved` is 95% or more
and `at baseline` is within 10% of the way from chance to perfect. Everything between is `partly`.
"""

from __future__ import annotations

SOLVED, PARTLY, AT_BASELINE = "solved", "partly", "at baseline"
SOLVED_LOSS = 0.1  # a share of the baseline
SOLVED_ACCURACY = 0.95
NEAR_BASELINE = 0.1  # a share of the way from the baseline to perfect


def progress(metric: str, score: float, baseline: float) -> float:
    """How far a score is from the baseline (0) towards perfect (1); negative when worse than the baseline."""
    if metric == "accuracy":
        return (score - baseline) / (1 - baseline)
    return (baseline - score) / baseline


def solved_at(metric: str, baseline: float) -> float:
    """The score beyond which a task counts as solved."""
    return SOLVED_ACCURACY if metric == "accuracy" else SOLVED_LOSS * baseline


def verdict(task, score: float) -> str:
    """The verdict on `score` for `task` (its `metric` and `baseline`)."""
    threshold = solved_at(task.metric, task.baseline)
    if (score >= threshold) if task.metric == "accuracy" else (score < threshold):
        return SOLVED
    return AT_BASELINE if progress(task.metric, score, task.baseline) < NEAR_BASELINE else PARTLY
