"""Statistics of a label table (Chen et al., ICLR 2021, section on label properties).

- ``entropy``: Shannon entropy in bits of each class label's histogram of values (every distinct
  value is a bin, as ``skimage.measure.shannon_entropy``), averaged over the classes (with std).
- ``l1`` / ``l2``: the mean over class pairs of the entrywise L1 and L2 distances between labels,
  after min-max normalising the whole table to [0, 1], divided by the number of entries D
  (L1) and by sqrt(D) (L2), so label spaces of any size compare on one [0, 1] scale. These are
  entrywise norms; the paper's script used matrix norms (``np.linalg.norm(ord=1)`` of a 2-D
  array is the largest column sum) and swapped the L1/L2 names.
"""
from __future__ import annotations

import numpy as np


def shannon_entropy(values: np.ndarray) -> float:
    """Entropy (base 2) of the histogram of distinct values, as skimage.measure.shannon_entropy."""
    from scipy.stats import entropy

    _, counts = np.unique(np.asarray(values), return_counts=True)
    return float(entropy(counts, base=2))


def label_stats(table) -> dict:
    """Entropy, pairwise distances and range of a ``[C, ...]`` label table."""
    from sklearn.metrics import pairwise_distances

    t = np.asarray(table, dtype=np.float64).reshape(len(table), -1)
    entropies = np.array([shannon_entropy(row) for row in t])
    lo, hi = t.min(), t.max()
    unit = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
    d = unit.shape[1]
    upper = np.triu_indices(len(t), k=1)
    l1 = pairwise_distances(unit, metric="manhattan")[upper] / d
    l2 = pairwise_distances(unit, metric="euclidean")[upper] / np.sqrt(d)
    return {
        "classes": len(t), "shape": list(np.asarray(table).shape[1:]), "min": float(lo), "max": float(hi),
        "entropy": float(entropies.mean()), "entropy_std": float(entropies.std()),
        "l1": float(l1.mean()) if l1.size else 0.0, "l2": float(l2.mean()) if l2.size else 0.0,
    }


def draw_labels(space, columns: int | None = None):
    """A matplotlib figure: one panel per class label (2-D labels as images, 1-D as a strip)."""
    import math

    import matplotlib.pyplot as plt

    table = space.table.numpy()
    c = len(table)
    columns = columns or min(c, 10)
    rows = math.ceil(c / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    lo, hi = float(table.min()), float(table.max())
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= c:
            continue
        img = table[i] if table.ndim == 3 else table[i].reshape(1, -1)
        ax.imshow(img, cmap="magma", vmin=lo, vmax=hi, aspect="auto" if table.ndim != 3 else "equal",
                  origin="lower" if space.name in ("speech", "shuffled") else "upper", interpolation="nearest")
        ax.set_title(space.classes[i], fontsize=8)
    fig.suptitle(f"{space.name} labels {'x'.join(map(str, table.shape[1:]))}, values [{lo:.3g}, {hi:.3g}]",
                 fontsize=9)
    fig.tight_layout()
    return fig
