"""CIFAR-10H (Peterson et al., ICCV 2019): human label distributions for the 10,000 CIFAR-10 test images.

The ``cifar10h`` source follows their protocol: it trains on the CIFAR-10 *test* images with the
human distributions as per-image targets (``Split.targets``, used by the ``per_image`` target
source), in k-fold cross-validation (``folds`` 10, held-out ``fold`` = the test split, folds
stratified by class and seeded by ``fold_seed``), and keeps the 50,000 CIFAR-10 training images as
a second, shifted test set (``ImageData.extra_tests["cifar10_train"]``). ``targets: majority`` gives
the training images one-hot rows of the annotators' majority instead: the hard baseline, side by
side. Labels (what accuracy counts) stay CIFAR-10's; the held-out fold keeps the human
distributions as targets, for the cross-entropy against them.

``cifar10h-probs.npy`` (CC BY-NC-SA 4.0) is never shipped: it is found beside the data, given as
``probs_file``, or downloaded (sha256-checked) with ``--download``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import UserError
from .download import locate_or_fetch
from .sources import DATASETS, ImageData, Split, cifar10, default_data_dir

FILE = "cifar10h-probs.npy"
TARGETS = ("soft", "majority")


def find_probs(file: str | Path | None, data_dir: str | Path | None, download: bool) -> Path:
    folders = []
    if data_dir is not None:
        folders += [Path(data_dir), Path(data_dir) / "cifar10h", Path(data_dir).parent]
    cache = default_data_dir() / "cifar10h"
    folders.append(cache)
    return locate_or_fetch(FILE, file, folders, download, cache, "CIFAR-10H's human label distributions")


def read_probs(path: str | Path) -> np.ndarray:
    """The ``[10000, 10]`` distributions of a checksum-verified file (float64, rows sum to 1)."""
    from .download import verified_file

    probs = np.load(verified_file(FILE, path), allow_pickle=False)
    return np.asarray(probs, dtype=np.float64)


def fold_indices(labels: np.ndarray, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) positions of fold ``fold`` of a stratified, seeded ``folds``-fold split."""
    from sklearn.model_selection import StratifiedKFold

    if not (isinstance(folds, int) and folds >= 2):
        raise UserError(f"cifar10h folds must be a whole number >= 2, got {folds!r}")
    if not (isinstance(fold, int) and 0 <= fold < folds):
        raise UserError(f"cifar10h fold must be one of 0..{folds - 1}, got {fold!r}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    train, held = list(splitter.split(np.zeros(len(labels)), labels))[fold]
    return np.sort(train), np.sort(held)


@DATASETS.register("cifar10h", "CIFAR-10H: train on the CIFAR-10 test images with human label distributions "
                               "(k-fold), test on the held-out fold and on CIFAR-10's training set")
def cifar10h(data_dir: str | Path | None = None, download: bool = False, fold: int = 0, folds: int = 10,
             fold_seed: int = 0, targets: str = "soft", probs_file: str | None = None) -> ImageData:
    if targets not in TARGETS:
        raise UserError(f"cifar10h targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    base = cifar10(data_dir, download)
    probs = read_probs(find_probs(probs_file, data_dir, download))
    test = base.test
    if probs.shape != (len(test), len(base.classes)):
        raise UserError(f"CIFAR-10H has {probs.shape[0]} rows of {probs.shape[1]}, the CIFAR-10 test split "
                        f"{len(test)} images of {len(base.classes)} classes")
    # Rows follow the original test order; a shuffled copy would pair images with others' votes.
    agreement = float((probs.argmax(1) == test.labels).mean())
    if agreement < 0.9:
        raise UserError(f"the CIFAR-10 test images are not in the original order (the human majority agrees "
                        f"with {agreement:.0%} of labels); an image folder needs its test_order.txt")
    human = probs.astype(np.float32)
    train_idx, held_idx = fold_indices(test.labels, folds, fold, fold_seed)
    rows = human if targets == "soft" else np.eye(len(base.classes), dtype=np.float32)[probs.argmax(1)]
    everything = dataclasses.replace(test, targets=rows)
    train = everything.take(train_idx)
    held = dataclasses.replace(test, targets=human).take(held_idx)
    shifted = Split(base.train.images, base.train.labels)
    return ImageData("cifar10h", base.classes, train, held, base.augment, extra_tests={"cifar10_train": shifted})
