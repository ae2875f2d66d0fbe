"""Labels that are learned while the network trains: LwAL (Yu & Verma, arXiv 2209.04528).

``lwal``: a linear head into ``dim`` dimensions and one label vector a class, initialised one-hot
(the authors' ``INIT_LABELS_FUNC["onehot"]``, ``dim`` = 10 x C as their "LwAL10"). The labels are
rewritten from class centroids of the head's outputs by the ``lwal`` target source
(labelrep/train/targets_learned.py); without it they stay fixed (the authors' ``fixed_label``).

- ``loss``: the pull loss, cross-entropy of the softmax over minus L2 distances from the output to
  every class label, plus ``repel`` (10, the authors' weight) x the mean cosine similarity between
  outputs of different classes in the batch (the authors' ``cos_repel_loss_z``, averaged over all
  B x B pairs as theirs). The own class enters through the target: the numerator is the distance
  to the target row, so ``target = labels[y]`` gives exactly the cross-entropy of class ``y``.
- ``scores``: minus the L2 distance to every current label (prediction by the nearest label).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import LabelSpace
from .heads import LearnedLabelHead
from .registry import LABEL_SPACES


def pairwise_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(|a|^2 - 2 a.b + |b|^2, 1e-12))``: the authors' form (a finite gradient at zero)."""
    sq = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None]
    return torch.sqrt(torch.clamp(sq, min=1e-12))


class LearnedLabelSpace(LabelSpace):
    name = "lwal"

    def __init__(self, classes: Sequence[str], dim: int | None = None, repel: float = 10.0):
        count = len(classes)
        dim = 10 * count if dim is None else dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < count:
            raise UserError(f"label option dim must be a whole number >= the {count} classes (one-hot start), "
                            f"got {dim!r}")
        if not (isinstance(repel, (int, float)) and not isinstance(repel, bool) and repel >= 0):
            raise UserError(f"label option repel is a weight >= 0, got {repel!r}")
        self._head: LearnedLabelHead | None = None
        #: this step's labels inside the gradient tape, set by the ``lwal`` target's ``refine``
        self.step_labels: torch.Tensor | None = None
        super().__init__(classes, torch.eye(count, dim))
        self.dim, self.repel = dim, float(repel)

    # The labels live in the head's buffer once a model is built, so loading weights loads them too.
    @property
    def table(self) -> torch.Tensor:
        return self._head.labels if self._head is not None else self._initial

    @table.setter
    def table(self, value: torch.Tensor) -> None:
        if self._head is not None:
            self._head.labels.copy_(value)
        else:
            self._initial = value.float()

    def head(self, in_features: int) -> nn.Module:
        self._head = LearnedLabelHead(in_features, self._initial)
        return self._head

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z, t = output.float(), target.float()
        labels = (self.step_labels if self.step_labels is not None else self.table).to(z.device)
        own = torch.sqrt(torch.clamp(((z - t) ** 2).sum(1), min=1e-12))
        pull = (torch.logsumexp(-pairwise_distance(z, labels), dim=1) + own).mean()
        if not self.repel:
            return pull
        unit = F.normalize(z, dim=1)
        other_class = (torch.cdist(t, t) > 0).float()  # equal target rows: the same class
        return pull + self.repel * (unit @ unit.T * other_class).mean()

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return -pairwise_distance(output.float(), self.table.to(output.device))

    def describe(self) -> dict:
        return {**super().describe(), "dim": self.dim, "repel": self.repel}


@LABEL_SPACES.register("lwal")
def lwal(classes: Sequence[str], dim: int | None = None, repel: float = 10.0) -> LearnedLabelSpace:
    """LwAL: learned label vectors (one-hot start, dim 10 x C), pull + repel loss, nearest label."""
    return LearnedLabelSpace(classes, dim, repel)
