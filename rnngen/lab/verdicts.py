"""The one rule that names a result: solved, partly, at baseline, worse than baseline, or not learned in N steps.

For a loss (adding: MSE; copy: cross-entropy), `solved` is below 10% of the memoryless baseline, `at baseline` is
within 10% of it and `worse than baseline` above 110% of it (further from perfect than ignoring the sequence, by the
same margin); for recall's accuracy, `solved` is 95% or more and `at baseline` is within 10% of the way from chance
to perfect (below chance by that margin is `worse than baseline`). Everything between is `partly`.

A run that is not solved is first asked whether it was still learning when its budget ended: if the best held-out
score of its last quarter beats the best one before it by more than 5% of the way from the baseline to perfect, the
verdict is `not learned in N steps` (the budget, not the model, ended it). Otherwise it had converged for this
budget, and the verdict says where: `at baseline` or `partly`. Best scores, not last ones, because the held-out
score of a run at its plateau moves by a few percent from one evaluation to the next; scores worse than the baseline
count as the baseline, because climbing from a fresh model's loss to it is not learning the task. A score worse
than the baseline by the margin above is named before that question: whatever the curve did, the model ended up
further from the answer than not reading the sequence. The rule cannot see a plateau that a later breakthrough would
end: a run flat at the baseline reads `at baseline`.
"""

from __future__ import annotations

from collections.abc import Sequence

SOLVED, PARTLY, AT_BASELINE, NOT_LEARNED = "solved", "partly", "at baseline", "not learned"
WORSE = "worse than baseline"
SOLVED_LOSS = 0.1  # a share of the baseline
SOLVED_ACCURACY = 0.95
NEAR_BASELINE = 0.1  # a share of the way from the baseline to perfect; as far on the other side is worse
LAST_PART = 0.25  # the share of a run's steps whose progress decides whether it was still learning
STILL_LEARNING = 0.05  # the progress (a share of the way from the baseline to perfect) that part must add

Curve = Sequence[tuple[int, float]]  # (step, held-out score) at every evaluation


def progress(metric: str, score: float, baseline: float) -> float:
    """How far a score is from the baseline (0) towards perfect (1); negative when worse than the baseline."""
    if metric == "accuracy":
        return (score - baseline) / (1 - baseline)
    return (baseline - score) / baseline


def solved_at(metric: str, baseline: float) -> float:
    """The score beyond which a task counts as solved."""
    return SOLVED_ACCURACY if metric == "accuracy" else SOLVED_LOSS * baseline


def is_solved(metric: str, score: float, baseline: float) -> bool:
    """Whether `score` is past `solved_at`: at or above it for an accuracy, below it for a loss."""
    threshold = solved_at(metric, baseline)
    return score >= threshold if metric == "accuracy" else score < threshold


def still_learning(metric: str, baseline: float, curve: Curve) -> bool:
    """Whether the best score of the run's last quarter beats the best one before it by more than `STILL_LEARNING`.
    Scores worse than the baseline count as the baseline: a fresh model starts below it, and reaching it (learning
    the targets' mean) is not learning the task."""
    end = curve[-1][0]
    gains = [(step, max(0.0, progress(metric, score, baseline))) for step, score in curve]
    before = [gain for step, gain in gains if step < (1 - LAST_PART) * end]
    last = [gain for step, gain in gains if step >= (1 - LAST_PART) * end]
    return bool(before) and max(last) - max(before) > STILL_LEARNING


def verdict(task, score: float, curves: Sequence[Curve] = ()) -> str:
    """The verdict on `score` for `task` (its `metric` and `baseline`), after runs whose held-out scores were
    `curves` (one per seed; none: the score alone decides, as while a run trains). A cell whose runs end unsolved
    is `not learned in N steps` when any of its unsolved runs was still learning at its end (N: the longest run's
    steps). A seed that was solved says nothing about the budget: it stopped because it was solved."""
    if is_solved(task.metric, score, task.baseline):
        return SOLVED
    if progress(task.metric, score, task.baseline) < -NEAR_BASELINE:
        return WORSE
    unsolved = [curve for curve in curves if not is_solved(task.metric, curve[-1][1], task.baseline)]
    if any(still_learning(task.metric, task.baseline, curve) for curve in unsolved):
        return f"{NOT_LEARNED} in {max(curve[-1][0] for curve in curves)} steps"
    return AT_BASELINE if progress(task.metric, score, task.baseline) < NEAR_BASELINE else PARTLY
