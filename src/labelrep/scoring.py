"""Scores and accuracy over a whole split, in batches, through the label space's ``scores``.

Below both training and evaluation: the loop tests with it, evaluations build on it."""
from __future__ import annotations

import torch
from torch import nn

from .data.loader import DeviceLoader
from .models.modes import eval_mode


@torch.no_grad()
def predict_scores(model: nn.Module, label_space, loader: DeviceLoader) -> torch.Tensor:
    """``[N, C]`` scores of every image the loader yields, in its order."""
    with eval_mode(model):
        out = [label_space.scores(model(x)).float() for x, _, _ in loader]
    return torch.cat(out)


def accuracy(model: nn.Module, label_space, loader: DeviceLoader) -> float:
    """Fraction of images whose highest score is their class."""
    scores = predict_scores(model, label_space, loader)
    return (scores.argmax(1) == loader.labels).float().mean().item()


def split_score(model: nn.Module, label_space, loader: DeviceLoader, targets=None) -> float:
    """The label space's headline number on a split (accuracy; mAP for multi-label spaces)."""
    return label_space.split_score(predict_scores(model, label_space, loader), loader.labels, targets)
