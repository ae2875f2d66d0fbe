"""CIFAR-10N (Wei et al., ICLR 2022): real human noisy labels for the 50,000 CIFAR-10 training images.

``data.train_labels`` picks one label set for the training split: ``clean`` (CIFAR-10's own),
``aggre`` (majority of three annotators, 9.0 % differ from clean), ``worse`` (40.2 %) or
``random1..3`` (one annotator each, about 17 %). The authors' file ``CIFAR-10_human.pt`` (CC BY-NC
4.0: downloaded for the user, never shipped) is a pickle: its sha256 is checked before it is opened,
and it is then read with ``torch.load(weights_only=True)``, which admits numpy arrays and nothing else.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import UserError
from .download import locate_or_fetch
from .sources import ImageData, default_data_dir

FILE = "CIFAR-10_human.pt"
LABEL_SETS = {"clean": "clean_label", "aggre": "aggre_label", "worse": "worse_label",
              "random1": "random_label1", "random2": "random_label2", "random3": "random_label3"}


def read_human_labels(path: str | Path) -> dict[str, np.ndarray]:
    """The label arrays of a checksum-verified ``CIFAR-10_human.pt``."""
    import torch

    try:
        from numpy._core import multiarray  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray

    from .download import verified_file

    path = verified_file(FILE, path)  # before any unpickling
    allowed = [(multiarray._reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
               type(np.dtype(np.int64))]
    with torch.serialization.safe_globals(allowed):
        raw = torch.load(path, weights_only=True)
    return {k: np.asarray(v, dtype=np.int64) for k, v in raw.items()}


def find_human_labels(file: str | Path | None, data_dir: str | Path | None, download: bool) -> Path:
    """``file`` if given, else CIFAR-10_human.pt in the data folder (or its ``cifar10n/``) or the cache;
    fetched into the cache (``~/.cache/labelrep/data/cifar10n``) when downloads are allowed."""
    folders = []
    if data_dir is not None:
        folders += [Path(data_dir), Path(data_dir) / "cifar10n"]
    cache = default_data_dir() / "cifar10n"
    folders.append(cache)
    return locate_or_fetch(FILE, file, folders, download, cache, "CIFAR-10N's human labels")


def apply_train_labels(data: ImageData, which: str, file: str | Path | None = None,
                       data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    """``data`` with its training labels replaced by CIFAR-10N's ``which`` set (``clean``: unchanged)."""
    if which not in LABEL_SETS:
        raise UserError(f"data.train_labels must be one of {', '.join(LABEL_SETS)}, got {which!r}")
    if which == "clean":
        return data
    if data.name != "cifar10":
        raise UserError(f"data.train_labels={which} swaps in CIFAR-10N's human labels, which exist for CIFAR-10 "
                        f"only; dataset is {data.name!r}")
    labels = read_human_labels(find_human_labels(file, data_dir, download))
    if len(data.train) != len(labels["clean_label"]):
        raise UserError(f"CIFAR-10N labels {len(labels['clean_label'])} training images, the data has {len(data.train)}")
    # Same order as the file, or the labels land on the wrong images: the clean set must match exactly.
    mismatched = int((labels["clean_label"] != data.train.labels).sum())
    if mismatched:
        raise UserError(f"the CIFAR-10 training images are not in the original order ({mismatched} of "
                        f"{len(data.train)} clean labels differ); an image folder needs its train_order.txt")
    train = dataclasses.replace(data.train, labels=labels[LABEL_SETS[which]].copy())
    return dataclasses.replace(data, train=train)

