"""Synthetic regressed labels of Chen et al. (ICLR 2021): constant, composite, random, lowdim.

Every table is seeded and repeatable; values lie in [0, 80], the range of the speech labels.
N (the label side) is 2 x the image side unless ``size`` is given (CIFAR 32x32 -> 64x64).

Composite labels follow the authors' generation code (their ``labels.ipynb``) by default: an
``imagen`` Composite of ten oriented Gaussians drawn on a 256 x 256 grid, min-max scaled to
[0, 255], resized to N x N by Pillow (bicubic, Pillow's default) and scaled to [0, 80]; class c is the
c-th draw. It is re-implemented here call for call (imagen no longer imports on current numpy), and
equals imagen 2.1.0's own output bit for bit on the 256 x 256 grid. ``generator="gaussians"``
keeps this package's earlier, plainly parameterised generator.
"""
from __future__ import annotations

from typing import Sequence

import random as _random

import numpy as np

from ..errors import UserError
from .regression import RegressionLabelSpace, label_size, make_space, regressed_space

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


COMPOSITE_GENERATORS = ("paper", "gaussians")
PAPER_GRID = 256            # imagen's default xdensity = ydensity over its unit square
PAPER_GAUSSIAN_SIZE = 0.15  # the authors' ig.Gaussian(size=0.15): sigma across = size / 2
PAPER_ASPECT = 1 / 0.31     # imagen's default aspect_ratio: sigma along = aspect * sigma across


def paper_composite_raw(num_classes: int, seed: int = 1, count: int = 10) -> np.ndarray:
    """The authors' ``labels = [gs() for _ in range(C)]``, ``[C, 256, 256]`` before scaling.

    Their Gaussian i has x = UniformRandom(seed=i+1) - 0.5, y = UniformRandom(seed=i+2) - 0.5 and
    orientation = pi * UniformRandom(seed=i+3), each its own ``random.Random(seed)`` stream
    (numbergen, not time dependent). imagen's Composite reads x and y twice per draw (once for each
    rotated coordinate of the centre), so each draw advances those streams by two and the
    orientation stream by one: the centre is (first x draw, second y draw).
    """
    xs = [_random.Random(seed + i) for i in range(count)]
    ys = [_random.Random(seed + i + 1) for i in range(count)]
    orientations = [_random.Random(seed + i + 2) for i in range(count)]
    # cell centres of imagen's sheet (holoviews SheetCoordinateSystem, rounded to 10 places)
    centres = np.around(-0.5 + (np.arange(PAPER_GRID) + 0.5) / PAPER_GRID, 10)
    across = PAPER_GAUSSIAN_SIZE / 2.0
    along = PAPER_ASPECT * across
    out = np.empty((num_classes, PAPER_GRID, PAPER_GRID))
    for c in range(num_classes):
        total = None
        for i in range(count):
            cx = xs[i].uniform(0.0, 1.0) - 0.5
            ys[i].uniform(0.0, 1.0)
            xs[i].uniform(0.0, 1.0)
            cy = ys[i].uniform(0.0, 1.0) - 0.5
            theta = np.pi * orientations[i].uniform(0.0, 1.0)
            dx, dy = centres - cx, -centres - cy  # columns left to right, rows top to bottom
            u = np.add.outer(np.sin(theta) * dy, np.cos(theta) * dx)
            v = np.subtract.outer(np.cos(theta) * dy, np.sin(theta) * dx)
            g = np.exp(-0.5 * (u / along) * (u / along) + -0.5 * (v / across) * (v / across))
            total = g if total is None else total + g
        out[c] = total
    return out


def paper_composite_table(num_classes: int, size: int, seed: int = 1, count: int = 10) -> np.ndarray:
    """The authors' composite table: each draw min-max scaled to [0, 255] as a float image, resized
    by Pillow's default (bicubic), then ``/ 255 * 80`` (bicubic may overshoot [0, 80] a little)."""
    from PIL import Image

    raw = paper_composite_raw(num_classes, seed, count)
    table = np.empty((num_classes, size, size), dtype=np.float32)
    for c in range(num_classes):
        data = (raw[c] - raw[c].min()) / (raw[c].max() - raw[c].min()) * 255
        image = Image.fromarray(data.astype(np.float32)).resize((size, size), Image.Resampling.BICUBIC)
        table[c] = np.asarray(image) / 255 * HIGH
    return table


def composite_table(num_classes: int, size: int, seed: int = 0, count: int = 10, sigma: float = 0.15,
                    aspect: float = 0.31) -> np.ndarray:
    """``generator="gaussians"``: per class, the sum of ``count`` elongated 2-D Gaussians, min-max
    scaled to [0, 80] (a documented stand-in, not the authors' table).

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


@regressed_space("constant", "regressed N x N labels, class i filled with i*80/(C-1) (the paper's 'uniform')")
def constant(classes: Sequence[str], image_size: int | None = None, size: int | None = None,
             **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    return make_space("constant", classes, constant_table(len(classes), n), {"size": n}, options)


@regressed_space("composite", "regressed N x N labels: sums of 10 random oriented Gaussians, [0, 80] "
                                   "(generator: paper, the authors' imagen recipe, or gaussians)")
def composite(classes: Sequence[str], image_size: int | None = None, size: int | None = None,
              generator: str = "paper", seed: int | None = None, count: int = 10, sigma: float = 0.15,
              aspect: float = 0.31, **options) -> RegressionLabelSpace:
    """``seed`` defaults to 1 for ``paper`` (the authors' ``UniformRandom(seed=i+1)``) and 0 for
    ``gaussians``; ``sigma`` and ``aspect`` shape the ``gaussians`` generator only."""
    n = label_size(image_size, size)
    if generator not in COMPOSITE_GENERATORS:
        raise UserError(f"composite generator must be one of {', '.join(COMPOSITE_GENERATORS)}, got {generator!r}")
    if count < 1 or sigma <= 0 or aspect <= 0:
        raise UserError("composite labels need count >= 1 and positive sigma and aspect")
    if generator == "paper":
        seed = 1 if seed is None else int(seed)
        table = paper_composite_table(len(classes), n, seed=seed, count=count)
        params = {"size": n, "generator": generator, "seed": seed, "count": count}
    else:
        seed = 0 if seed is None else int(seed)
        table = composite_table(len(classes), n, seed=seed, count=count, sigma=sigma, aspect=aspect)
        params = {"size": n, "generator": generator, "seed": seed, "count": count, "sigma": sigma, "aspect": aspect}
    return make_space("composite", classes, table, params, options)


@regressed_space("random", "regressed N x N labels, uniform in [0, 80] (seed 48 as in the paper)")
def random(classes: Sequence[str], image_size: int | None = None, size: int | None = None, seed: int = 48,
           **options) -> RegressionLabelSpace:
    n = label_size(image_size, size)
    return make_space("random", classes, random_table(len(classes), (n, n), seed), {"size": n, "seed": seed}, options)


# Ten entries a label: at the default temperature 0.2 the nearest-label loss collapsed training
# (0.11 at 5 epochs on 10 % of CIFAR-10); at 1.0 it reached 0.46 (labels_that_learn.md).
@regressed_space("lowdim", "regressed 10-d labels, uniform in [0, 80] (seed 48), linear head",
                 defaults={"aux_temperature": 1.0})
def lowdim(classes: Sequence[str], dim: int = 10, seed: int = 48, **options) -> RegressionLabelSpace:
    if dim < 1:
        raise UserError(f"lowdim labels need dim >= 1, got {dim}")
    return make_space("lowdim", classes, random_table(len(classes), (dim,), seed), {"dim": dim, "seed": seed}, options)
