"""Agreement with per-image label distributions and calibration, on every test set a source has.

For the test split and each of the source's ``extra_tests`` (e.g. CIFAR-10H's shifted CIFAR-10
training set) the rows are ``accuracy``, ``ece`` and ``nll`` (of softmax(scores), T = 1, against
the class labels) and, where the split carries per-image target distributions (``Split.targets``,
e.g. the human ones), ``target_ce``: the cross-entropy ``-sum_c t_c log p_c`` against them, beside
``target_entropy``, its floor (the distributions' own entropy). Each row has the key ``split``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .calibration import expected_calibration_error
from .registry import Drawing, register_evaluation


def soft_label_rows(scores: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
                    bins: int = 15) -> list[dict]:
    log_p = F.log_softmax(scores.double(), dim=1)
    rows = [{"metric": "accuracy", "value": float((scores.argmax(1) == labels).double().mean())},
            {"metric": "ece", "value": expected_calibration_error(log_p.exp(), labels, bins), "bins": bins},
            {"metric": "nll", "value": float(F.nll_loss(log_p, labels))}]
    if targets is not None:
        t = targets.double()
        rows.append({"metric": "target_ce", "value": float(-(t * log_p).sum(1).mean())})
        rows.append({"metric": "target_entropy", "value": float(-torch.xlogy(t, t).sum(1).mean())})
    return rows


@register_evaluation("soft_labels", "accuracy, ECE, NLL and cross-entropy against per-image label distributions, "
                                   "on the test split and each extra test split",
                     drawing=Drawing(title="agreement with per-image label distributions", ignore=("images", "bins")))
def soft_label_evaluation(run, bins: int = 15, max_images: int | None = None, seed: int = 0) -> list[dict]:
    """``max_images``: a seeded subset of each split (the same for every run)."""
    from ..scoring import predict_scores
    from .robustness import evaluation_images

    parts = run.parts
    rows = []
    for name, split in {"test": parts.data.test, **parts.data.extra_tests}.items():
        split = split.take(evaluation_images(len(split), max_images, seed))
        scores = predict_scores(run.model, parts.label_space, parts.loader(split)).cpu()
        targets = None if split.targets is None else torch.as_tensor(split.targets)
        for row in soft_label_rows(scores, torch.as_tensor(split.labels), targets, bins):
            rows.append({**row, "split": name, "images": len(split)})
    return rows
