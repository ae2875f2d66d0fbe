"""Categorical label spaces: one-hot and smoothed rows, a linear head, cross-entropy."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
from .base import LabelSpace
from .losses import create_loss, kl_divergence  # noqa: F401  (kl_divergence: imported from here by callers)
from .registry import LABEL_SPACES


class CategoricalLabelSpace(LabelSpace):
    """Rows are probability-like vectors; the head emits logits; the loss is one of ``labels.losses``:
    soft-target cross-entropy (``ce``), KL (``kl``, BC learning's loss), the noise-robust ``gce`` and
    ``sce``, or the class-balanced ``cb_softmax``, ``cb_sigmoid``, ``cb_focal`` (which need the
    training split's class counts); ``loss_options`` go to the loss."""

    name = "categorical"
    distribution = True

    def __init__(self, classes: Sequence[str], table: torch.Tensor, loss: str = "ce",
                 loss_options: dict | None = None, train_class_counts: Sequence[int] | None = None):
        super().__init__(classes, table)
        if loss_options is not None and not isinstance(loss_options, dict):
            raise UserError(f"categorical loss_options must be a mapping, got {loss_options!r}")
        self.loss_name = loss
        self.loss_options = dict(loss_options or {})
        self.loss_fn = create_loss(loss, self.num_classes, train_class_counts, self.loss_options)

    def head(self, in_features: int) -> nn.Module:
        layer = nn.Linear(in_features, self.num_classes)
        if self.loss_fn.bias_init is not None:
            nn.init.constant_(layer.bias, self.loss_fn.bias_init)
        return layer

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(output, target)

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return output

    def describe(self) -> dict:
        return {**super().describe(), "loss": self.loss_name, "loss_options": self.loss_options}


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
def categorical(classes: Sequence[str], loss: str = "ce", loss_options: dict | None = None,
                train_class_counts: Sequence[int] | None = None) -> CategoricalLabelSpace:
    """One-hot rows, linear head, cross-entropy (loss: ce|kl|gce|sce|cb_softmax|cb_sigmoid|cb_focal)."""
    return CategoricalLabelSpace(classes, torch.eye(len(classes)), loss, loss_options, train_class_counts)


@LABEL_SPACES.register("smoothed")
def smoothed(classes: Sequence[str], alpha: float = 0.1, scheme: int = 1, loss: str = "ce",
             loss_options: dict | None = None, train_class_counts: Sequence[int] | None = None) -> CategoricalLabelSpace:
    """Label smoothing: scheme 1 (1-a+a/n, a/n) or scheme 2 (1-a, 0); linear head, cross-entropy."""
    space = CategoricalLabelSpace(classes, smoothed_table(len(classes), alpha, scheme), loss, loss_options,
                                  train_class_counts)
    space.name = "smoothed"
    space.alpha, space.scheme = alpha, scheme
    return space
