"""Categorical label spaces: one-hot and smoothed rows, a linear head, cross-entropy."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import LabelSpace
from .registry import LABEL_SPACES


LOSSES = ("ce", "kl")


def kl_divergence(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(output)), summed over classes and averaged over the batch.

    Stable: log-softmax (never log of a softmax that underflowed) and ``xlogy`` (0 log 0 = 0), so
    targets with zeros and extreme logits give a finite loss and finite gradients. It differs from
    soft-target cross-entropy by the targets' entropy only: same gradient, zero at a perfect fit.
    """
    target = target.float()
    return (torch.xlogy(target, target) - target * F.log_softmax(output.float(), dim=1)).sum(dim=1).mean()


class CategoricalLabelSpace(LabelSpace):
    """Rows are probability-like vectors; the head emits logits; loss is soft-target cross-entropy
    (``loss="ce"``) or the KL divergence to the target (``loss="kl"``, BC learning's loss)."""

    name = "categorical"
    distribution = True

    def __init__(self, classes: Sequence[str], table: torch.Tensor, loss: str = "ce"):
        if loss not in LOSSES:
            raise UserError(f"categorical loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        super().__init__(classes, table)
        self.loss_name = loss

    def head(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.num_classes)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "kl":
            return kl_divergence(output, target)
        # Cross-entropy with dense targets: -(t * log_softmax(z)).sum(1).mean(); equals the usual
        # cross-entropy for one-hot rows and takes soft, refined or mixed targets unchanged.
        return F.cross_entropy(output.float(), target.float())

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return output


def smoothed_table(num_classes: int, alpha: float, scheme: int) -> torch.Tensor:
    """Label-smoothing rows.

    scheme 1: correct class 1 - a + a/n, others a/n (Szegedy et al.);
    scheme 2: correct class 1 - a, others 0 (the multi-label smoothing variant).
    """
    if not 0.0 <= alpha < 1.0:
        raise UserError(f"smoothing alpha must lie in [0, 1), got {alpha}")
    eye = torch.eye(num_classes, dtype=torch.float64)
    if scheme == 1:
        table = eye * (1.0 - alpha) + alpha / num_classes
    elif scheme == 2:
        table = eye * (1.0 - alpha)
    else:
        raise UserError(f"smoothing scheme must be 1 or 2, got {scheme}")
    return table.float()


@LABEL_SPACES.register("categorical")
def categorical(classes: Sequence[str], loss: str = "ce") -> CategoricalLabelSpace:
    """One-hot rows, linear head, cross-entropy (loss="kl": KL divergence to the target)."""
    return CategoricalLabelSpace(classes, torch.eye(len(classes)), loss=loss)


@LABEL_SPACES.register("smoothed")
def smoothed(classes: Sequence[str], alpha: float = 0.1, scheme: int = 1, loss: str = "ce") -> CategoricalLabelSpace:
    """Label smoothing: scheme 1 (1-a+a/n, a/n) or scheme 2 (1-a, 0); linear head, cross-entropy."""
    space = CategoricalLabelSpace(classes, smoothed_table(len(classes), alpha, scheme), loss=loss)
    space.name = "smoothed"
    space.alpha, space.scheme = alpha, scheme
    return space
