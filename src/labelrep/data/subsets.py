"""Subsets of a training split: class-balanced fractions, seeded random draws, validation hold-outs."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"a data fraction must lie in (0, 1], got {fraction}")
    return fraction


def class_balanced_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The same fraction of every class (at least one image each), drawn with ``seed``; sorted."""
    fraction = check_fraction(fraction)
    if fraction == 1.0:
        return np.arange(len(labels))
    if len(labels) and labels.min() < 0:  # a multi-label source's images have no one class (labels -1)
        raise UserError("a class-balanced fraction needs one class per image, but this data source is multi-label: "
                        "set data.balanced=false for a seeded uniform draw")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def random_indices(num: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded uniform draw of ``round(fraction * num)`` images, classes unbalanced (the paper's 1 %)."""
    fraction = check_fraction(fraction)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num, size=max(1, int(round(fraction * num))), replace=False))


def validation_split(labels: np.ndarray, size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``size`` images (a count, or a fraction if < 1), class-balanced; returns (train, val)."""
    n = len(labels)
    count = int(round(size * n)) if 0 < size < 1 else int(size)
    if not 0 < count < n:
        raise UserError(f"a validation split of {size} does not fit a training set of {n} images")
    classes = np.unique(labels)
    rng = np.random.default_rng(seed + 7919)
    val = []
    per_class = np.full(len(classes), count // len(classes))
    per_class[: count % len(classes)] += 1
    for c, k in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        val.append(rng.choice(members, size=min(k, len(members) - 1), replace=False))
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    return train_idx, val_idx


def long_tail_counts(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    """``n_c = int(n_max * (1 / IF)^(c / (C - 1)))``: class 0 keeps ``n_max``, the last ``n_max / IF``
    (Cui et al. 2019's CIFAR-LT; ``int`` truncates as their ``get_img_num_per_cls`` does)."""
    imbalance = float(imbalance)
    if not imbalance >= 1.0:
        raise UserError(f"data.imbalance is the ratio of the largest to the smallest class and must be >= 1, "
                        f"got {imbalance}")
    if num_classes == 1:
        return [int(n_max)]
    return [int(n_max * (1.0 / imbalance) ** (c / (num_classes - 1.0))) for c in range(num_classes)]


def long_tail_indices(labels: np.ndarray, num_classes: int, imbalance: float, seed: int) -> np.ndarray:
    """A seeded long-tailed draw: ``long_tail_counts`` images of class c, n_max the smallest class's size
    (so every class can supply its share); sorted."""
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    n_max = min(len(m) for m in members)
    counts = long_tail_counts(n_max, num_classes, imbalance)
    if min(counts) < 1:
        raise UserError(f"data.imbalance={imbalance} leaves a class with no image ({n_max} images in the "
                        "smallest class); lower it or use more data")
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(m, size=k, replace=False) for m, k in zip(members, counts)]))
