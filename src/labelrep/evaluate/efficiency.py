"""Data efficiency: the same schedule on growing fractions of the training set, several seeds, per label space.

A sweep is a study (``label x data.fraction x seeds``) run by the study runner, resumable like any
other; ``efficiency_study`` writes its content (what ``labelrep efficiency`` runs), and the study
report draws test accuracy against the fraction. ``balanced=False`` gives the paper's draw: a seeded
uniform 1 % (500 of 50,000 CIFAR-10 images), classes unbalanced. ``steps`` fixes the number of
optimiser steps (``train.steps``) instead of epochs, so a 1 % run is not stopped after a handful of
updates.
"""
from __future__ import annotations

import copy
from typing import Sequence

from ..errors import UserError

DEFAULT_FRACTIONS = (0.01, 0.02, 0.04, 0.08, 0.1, 0.2)


def efficiency_study(base: dict, labels: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     seeds: Sequence[int] = (0, 1), balanced: bool = True, steps: int | None = None,
                     max_images: int | None = None, name: str = "efficiency") -> dict:
    """The study mapping of a sweep: ``base`` (a run config; its seed is the study's to set), one axis
    of label spaces, one of fractions, and the test accuracy of each run (on ``max_images`` fixed
    test images when given)."""
    if not labels or not fractions or not seeds:
        raise UserError("a data-efficiency sweep needs at least one label space, fraction and seed")
    base = copy.deepcopy(base)
    base.get("train", {}).pop("seed", None)
    base.setdefault("data", {})["balanced"] = bool(balanced)
    if steps is not None:
        base.setdefault("train", {})["steps"] = int(steps)
    accuracy = {"accuracy": {"max_images": max_images}} if max_images is not None else "accuracy"
    return {"name": name, "description": "test accuracy against the fraction of the training set used",
            "base": base, "axes": {"label": {str(label): {"label.name": label} for label in labels},
                                   "data.fraction": [float(f) for f in fractions]},
            "seeds": [int(s) for s in seeds], "evaluations": [accuracy]}
