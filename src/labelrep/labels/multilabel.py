"""Multi-label targets: multi-hot rows, one logit per class, binary cross-entropy with logits.

Targets are hard multi-hot rows (1 present, 0 absent, NaN left out: VOC's "difficult"); the loss
smooths them itself, so the data's per-image targets and mixed targets go in unchanged:

- scheme 1: positives 1 - a + a/n, negatives a/n (timm's ``BinaryCrossEntropy(smoothing=a)`` values);
- scheme 2: positives 1 - a, negatives 0.

Masked entries are out of the loss: the loss is the mean BCE over the entries that count and has no
gradient at the others. Decisions are per class, by a threshold on the sigmoid, never an argmax.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import LabelSpace
from .registry import LABEL_SPACES


def _valid(scores: np.ndarray, targets: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(targets[:, c])
    return targets[keep, c] > 0.5, scores[keep, c]


def class_average_precision(scores, targets) -> np.ndarray:
    """``[C]`` scikit-learn AP of each class over its non-difficult images; NaN for a class with no positive."""
    from sklearn.metrics import average_precision_score

    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        y, s = _valid(scores, targets, c)
        if y.any():
            out[c] = average_precision_score(y, s)
    return out


def smooth_multihot(target: torch.Tensor, alpha: float, scheme: int) -> torch.Tensor:
    """Soft values for hard (or mixed) multi-hot targets; NaN stays NaN."""
    n = target.shape[-1]
    if scheme == 1:
        return target * (1.0 - alpha) + alpha / n
    return target * (1.0 - alpha)


def masked_bce_with_logits(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy with logits over the entries whose target is not NaN."""
    keep = ~torch.isnan(target)
    per_entry = F.binary_cross_entropy_with_logits(output.float(), torch.where(keep, target, 0.0).float(),
                                                   reduction="none")
    return torch.where(keep, per_entry, 0.0).sum() / keep.sum().clamp_min(1)


class MultiHotLabelSpace(LabelSpace):
    """``table`` is the identity (the multi-hot row of an image showing one class); the head emits one
    logit per class; ``scores`` are those logits (higher = more likely, per class)."""

    name = "multihot"
    multi_label = True
    test_metric = "map"

    def __init__(self, classes: Sequence[str], alpha: float = 0.0, scheme: int = 1, threshold: float = 0.5):
        if not 0.0 <= float(alpha) < 1.0:
            raise UserError(f"smoothing alpha must lie in [0, 1), got {alpha}")
        if scheme not in (1, 2):
            raise UserError(f"multi-label smoothing scheme must be 1 (1-a+a/n, a/n) or 2 (1-a, 0), got {scheme!r}")
        if not 0.0 < float(threshold) < 1.0:
            raise UserError(f"the decision threshold must lie in (0, 1), got {threshold}")
        super().__init__(classes, torch.eye(len(classes)))
        self.alpha, self.scheme, self.threshold = float(alpha), int(scheme), float(threshold)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        raise UserError("the multi-label space 'multihot' trains on each image's multi-hot row, not on a class id: "
                        "set target.name=per_image with a multi-label data source (voc2012, mosaic)")

    def smoothed(self, target: torch.Tensor) -> torch.Tensor:
        return smooth_multihot(target, self.alpha, self.scheme)

    def head(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.num_classes)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return masked_bce_with_logits(output, self.smoothed(target))

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return output

    def split_score(self, scores: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> float:
        """Class-wise mean AP over the non-difficult entries (the loop's headline number for multi-label)."""
        if targets is None:
            raise UserError("a multi-label split needs per-image targets to score")
        return float(np.nanmean(class_average_precision(scores.cpu().numpy(), np.asarray(targets))))

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` bool: each class whose probability is above the threshold."""
        return torch.sigmoid(output.float()) > self.threshold

    def describe(self) -> dict:
        return {**super().describe(), "multi_label": True, "alpha": self.alpha, "scheme": self.scheme,
                "threshold": self.threshold}


@LABEL_SPACES.register("multihot")
def multihot(classes: Sequence[str], alpha: float = 0.0, scheme: int = 1, threshold: float = 0.5) -> MultiHotLabelSpace:
    """Multi-label: multi-hot rows, BCE with logits, smoothing scheme 1 or 2 (alpha), threshold decisions."""
    return MultiHotLabelSpace(classes, alpha, scheme, threshold)
