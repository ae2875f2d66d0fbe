"""Agreement of a run with its teacher: the share of test images on which both predict the same class.

For refinery and born-again generations this is the agreement between consecutive generations
(R2 with R1, R3 with R2); an ensemble teacher's class is the argmax of its members' mean softmax.
The teacher is judged on its saved weights in eval mode, also for a student trained with the
teacher in ``mode: train`` (whose targets came from batch statistics): the teacher as it is tested.
A run trained without a teacher has no rows.
"""
from __future__ import annotations

import torch

from ..models.modes import eval_mode
from ..train.targets import create_target_source
from .registry import Drawing, register_evaluation
from .robustness import evaluation_images


@register_evaluation("teacher_agreement", "share of test images on which the run predicts its teacher's class",
                     drawing=Drawing(names={"teacher_agreement": "agreement with teacher"}))
def teacher_agreement(run, max_images: int | None = None) -> list[dict]:
    """``max_images``: a fixed seeded choice of that many test images (as for ``accuracy``)."""
    target = run.config["target"]
    if target["name"] != "teacher":
        return []
    teacher = create_target_source("teacher", **{**target["options"], "mode": "eval"})
    teacher.bind(run.parts)
    test = run.parts.data.test
    if max_images is not None:
        test = test.take(evaluation_images(len(test), max_images))
    same, teacher_right = 0, 0
    with torch.no_grad(), eval_mode(run.model):
        for x, y, _ in run.parts.loader(test):
            theirs = teacher.predict(x)
            same += int((run.label_space.predict(run.model(x)) == theirs).sum())
            teacher_right += int((theirs == y).sum())
    rows = [{"metric": "teacher_agreement", "value": same / len(test)},
            {"metric": "teacher_accuracy", "value": teacher_right / len(test)}]
    if max_images is not None:
        rows = [{**r, "images": len(test)} for r in rows]
    return rows
