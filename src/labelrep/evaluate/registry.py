"""Evaluations a study (or the CLI) runs on a finished run, by name.

An evaluation is a function ``fn(run, **options) -> list[dict]`` taking a ``labelrep.run.LoadedRun``
and returning tidy rows, each at least ``{"metric": str, "value": float}`` plus any keys that
locate the number (``eps``, ``protocol``, ``attack``, ``checkpoint``...).
"""
from __future__ import annotations

from ..registry import Registry

EVALUATIONS: Registry = Registry("evaluation", builds=False)  # they run: their errors are not refusals


@EVALUATIONS.register("accuracy", "test accuracy of the run's final weights")
def test_accuracy(run) -> list[dict]:
    from .accuracy import accuracy

    acc = accuracy(run.model, run.label_space, run.parts.loader(run.parts.data.test))
    return [{"metric": "test_accuracy", "value": acc}]
