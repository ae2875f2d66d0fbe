"""Synthetic regressed labels of Chen et al. (ICLR 2021): constant, composite, random, lowdim.

Every table is seeded and repeatable; values lie in [0, 80], the range of the speech labels.
N (the label side) is 2 x the image side unless ``size`` is given (CIFAR 32x32 -> 64x64).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UserError
from .regression import RegressionLabelSpace, label_size, make_space
from .registry import LABEL_SPACES

HIGH = 80.0


def constant_table(num_classes: int, size: int) -> np.ndarray:
    """Class i is the N x N matrix filled with i * 80 / (C - 1) (the paper's "uniform" labels)."""
    values = np.arange(num_classes, dtype=np.float64) * HIGH / max(num_classes - 1, 1)
    return np.broadcast_to(values[:, None, None], (num_classes, size, size)).astype(np.float32)


def random_table(num_classes: int, shape: tuple[int, ...], seed: int = 48) -> np.ndarray:
    """``np.random.seed(seed); uniform(0, 80, (C, *shape))``.

    The legacy generator fills in C order, so the first C rows of the paper's (100, 64, 64) draw
    are this draw of (C, 64, 64): CIFAR-10 gets exactly the paper's first ten.
    """
    return np.random.RandomState(seed).uniform(0.0, HIGH, (num_classes, *shape)).astype(np.float32)


def composite_table(num_classes: int, size: int, seed: int = 0, count: int = 10, sigma: float = 0.15,
                    aspect: float = 0.31) -> np.ndarray:
    """Per class, the sum of ``count`` elongated 2-D Gaussians, min-max scaled to [0, 80].

    The grid spans [-0.5, 0.5] on both axes. Each Gaussian has its centre uniform in [-0.5, 0.5]^2,
    its orientation uniform in [0, pi], a standard deviation ``sigma`` along its long axis and
    ``sigma * aspect`` across it (length : width = 1 : 0.31 as in the paper).
    """
    rng = np.random.RandomState(seed)
    axis = np.linspace(-0.5, 0.5, size)
    x, y = np.meshgrid(axis, axis)  # x varies along columns
    table = np.zeros((num_classes, size, size))
    for c in range(num_classes):
        centres = rng.uniform(-0.5, 0.5, (count, 2))
        angles = rng.uniform(0.0, np.pi, count)
        for (cx, cy), theta in zip(centres, angles):
            u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
            v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
            table[c] += np.exp(-0.5 * ((u / sigma) ** 2 + (v / (sigma * aspect)) ** 2))
        lo, hi = table[c].min(), table[c].max()
        table[c] = (table[c] - lo) / (hi - lo) * HIGH if hi > lo else 0.0
    return table.astype(np.float32)


@LABEL_SPACES.register("constant", "regressed N x N labels, class i filled with i*80/(C-1) (the paper's 'uniform')")
def constant(classes: Sequence[str], image_size: int | None = None, size: int | None = None,
             **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    return make_space("constant", classes, constant_table(len(classes), n), {"size": n}, options)


@LABEL_SPACES.register("composite", "regressed N x N labels: sums of 10 random elongated Gaussians, [0, 80]")
def composite(classes: Sequence[str], image_size: int | None = None, size: int | None = None, seed: int = 0,
              count: int = 10, sigma: float = 0.15, aspect: float = 0.31, **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    if count < 1 or sigma <= 0 or aspect <= 0:
        raise UserError("composite labels need count >= 1 and positive sigma and aspect")
    table = composite_table(len(classes), n, seed=seed, count=count, sigma=sigma, aspect=aspect)
    return make_space("composite", classes, table,
                      {"size": n, "seed": seed, "count": count, "sigma": sigma, "aspect": aspect}, options)


@LABEL_SPACES.register("random", "regressed N x N labels, uniform in [0, 80] (seed 48 as in the paper)")
def random(classes: Sequence[str], image_size: int | None = None, size: int | None = None, seed: int = 48,
           **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    return make_space("random", classes, random_table(len(classes), (n, n), seed), {"size": n, "seed": seed}, options)


@LABEL_SPACES.register("lowdim", "regressed 10-d labels, uniform in [0, 80] (seed 48), linear head")
def lowdim(classes: Sequence[str], dim: int = 10, seed: int = 48, **options) -> RegressionLabelSpace:
    if dim < 1:
        raise UserError(f"lowdim labels need dim >= 1, got {dim}")
    return make_space("lowdim", classes, random_table(len(classes), (dim,), seed), {"dim": dim, "seed": seed}, options)
