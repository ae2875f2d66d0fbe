"""Accuracy against optimisation steps: read "comparable accuracy" at every budget, not one.

The run's per-epoch test accuracy (every ``train.eval_every`` epochs and the last) placed at the
optimisation steps taken by then, so label spaces, data fractions and batch sizes that need
different steps per epoch share one axis. A point is the accuracy after that many steps of the run's
whole schedule (a cosine schedule has not annealed yet); a study axis ``train.steps`` gives exact
budgets instead, one complete schedule each (drawn by the report as a sweep over ``train.steps``).
"""
from __future__ import annotations

from ..errors import UserError
from .registry import Drawing, register_evaluation


def steps_at_epochs(run) -> tuple[int, int]:
    """``(steps per epoch, total steps)`` of a run, as its loop counted them."""
    per_epoch = len(run.parts.loader(run.parts.train, train=True))
    total = (run.summary or {}).get("steps") or per_epoch * len(run.history)
    return per_epoch, total


@register_evaluation("budget", "test accuracy against optimisation steps (each tested epoch of the run)",
                     drawing=Drawing(x="steps", curves=("test_accuracy",), title="Accuracy against optimisation steps",
                                     names={"test_accuracy": "test accuracy", "steps": "optimisation steps"}))
def budget(run) -> list[dict]:
    tested = [r for r in run.history if r.get("test_accuracy") is not None]
    if not tested:
        raise UserError(f"{run.path} has no tested epochs in its metrics.jsonl; the budget curve reads them")
    per_epoch, total = steps_at_epochs(run)
    return [{"metric": "test_accuracy", "value": r["test_accuracy"], "steps": min(r["epoch"] * per_epoch, total)}
            for r in tested]
