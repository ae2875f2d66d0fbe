"""Output heads for regressed labels.

- ``Decoder2d``: the decoder of Chen et al. (ICLR 2021) for square N x N labels:
  BatchNorm1d(F) -> LeakyReLU -> Linear(F, 64) -> 64x1x1 -> ConvTranspose(64, 64, k=s) -> s x s,
  then k doublings (k4, s2, p1) 64->32->16->8, each with BatchNorm + LeakyReLU, the last to one
  channel with no output activation. For N = 64: s = 4 and four doublings, exactly the paper's;
  N = 48: s = 3 (the paper's BERT decoder). Other N: the most doublings (at most 4) that divide N.
- ``LinearHead``: a linear layer reshaped to the label's shape (1-D labels, odd shapes).
- ``OutputAffine``: a fixed ``y * std + mean`` after a head, so the layers before it work in
  standardised units while the head still emits labels in table units (loss and scores unchanged).
"""
from __future__ import annotations

import math

import torch
from torch import nn

WIDTHS = (64, 32, 16, 8)


def decoder_plan(size: int, max_doublings: int = 4) -> tuple[int, int]:
    """``(start, doublings)`` with ``start * 2**doublings == size``: the most doublings that fit."""
    if size < 1:
        raise ValueError(f"label size must be positive, got {size}")
    k = max_doublings
    while k > 0 and size % (2 ** k):
        k -= 1
    return size // 2 ** k, k


class Decoder2d(nn.Module):
    def __init__(self, in_features: int, size: int, width: int = 64):
        super().__init__()
        start, k = decoder_plan(size)
        self.size = size
        self.fc = nn.Sequential(nn.BatchNorm1d(in_features), nn.LeakyReLU(), nn.Linear(in_features, width))
        chans = [width, *(w * width // 64 for w in WIDTHS[1:k])]
        layers: list[nn.Module] = [nn.ConvTranspose2d(width, width if k else 1, start, 1, 0)]
        if k:
            layers += [nn.BatchNorm2d(width), nn.LeakyReLU()]
        for i in range(k):
            cin = chans[i]
            cout = chans[i + 1] if i + 1 < k else 1
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i + 1 < k:
                layers += [nn.BatchNorm2d(cout), nn.LeakyReLU()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.fc(features)[:, :, None, None]
        return self.deconvs(x).reshape(-1, self.size, self.size)


class LinearHead(nn.Module):
    def __init__(self, in_features: int, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.linear = nn.Linear(in_features, math.prod(self.shape))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).reshape(-1, *self.shape)


class OutputAffine(nn.Module):
    """``x * std + mean`` with fixed (buffer) statistics of the label table."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def regression_head(in_features: int, shape: tuple[int, ...], kind: str = "auto") -> nn.Module:
    """The decoder for square 2-D labels (``auto`` or ``decoder``), else a linear head."""
    square = len(shape) == 2 and shape[0] == shape[1]
    if kind == "decoder" or (kind == "auto" and square):
        if not square:
            raise ValueError(f"the decoder head needs square 2-D labels, got shape {shape}")
        return Decoder2d(in_features, shape[0])
    return LinearHead(in_features, shape)


class LearnedLabelHead(nn.Module):
    """A linear layer into a label space whose class labels change during training.

    The labels are a buffer (``labels``, ``[C, D]``), not a parameter: no gradient or weight decay
    reaches them, a training hook rewrites them, and they travel in every ``state_dict`` (checkpoints,
    ``best.pt``, a loaded run) with the weights that were trained against them.
    """

    def __init__(self, in_features: int, labels: torch.Tensor):
        super().__init__()
        self.linear = nn.Linear(in_features, labels.shape[1])
        self.register_buffer("labels", labels.detach().clone().float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)
