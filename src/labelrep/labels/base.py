"""The label-space interface every label representation plugs into.

A label space says what the network is asked to output for each class:

- ``classes``: class names in index order;
- ``table``: a tensor ``[C, *shape]``, the target of each class;
- ``head(in_features)``: the output module that emits ``[B, *shape]``;
- ``loss(output, target)``: the training loss against a dense target ``[B, *shape]``
  (``table[y]`` or a per-sample target of the same shape: soft, refined or mixed labels);
- ``scores(output)``: ``[B, C]``, higher means more likely; everything downstream
  (accuracy, attacks, calibration, reports) works from it;
- ``multi_label``: False when each image has one class (decisions by argmax); True when an image may
  show several (decisions per class by a threshold): whatever needs one class per image refuses it
  through ``require_single_label``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import UserError


class LabelSpace:
    name: str = "base"
    #: rows are probability distributions over the classes (a teacher's softmax is a valid target)
    distribution: bool = False
    #: an image may show several classes: decisions per class by a threshold, never an argmax
    multi_label: bool = False
    #: what the loop reports as a split's headline number (``test_accuracy`` in history and summary)
    test_metric: str = "accuracy"

    def __init__(self, classes: Sequence[str], table: torch.Tensor):
        if len(classes) != table.shape[0]:
            raise ValueError(f"{len(classes)} classes but a table of {table.shape[0]} rows")
        self.classes = list(classes)
        self.table = table.float()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.table.shape[1:])

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Dense targets for class indices ``y``: the rows of ``table``."""
        return self.table.to(y.device)[y]

    def head(self, in_features: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def split_score(self, scores: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> float:
        """The headline number of a whole split: accuracy (the highest score is the class)."""
        return (scores.argmax(1) == labels.to(scores.device)).float().mean().item()

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return self.scores(output).argmax(dim=1)

    def require_single_label(self, what: str) -> None:
        """Refuse, in one sentence, something that assumes one class per image (argmax decisions)."""
        if self.multi_label:
            raise UserError(f"{what} assumes one class per image, but label space {self.name!r} is multi-label "
                            "(decisions per class by a threshold); use the multilabel evaluation "
                            "(class-wise average precision) instead")

    def describe(self) -> dict:
        """Parameters that identify this label space (written into run folders)."""
        return {"name": self.name, "shape": list(self.shape), "num_classes": self.num_classes}
