"""Feature geometry: the encoder's features of a fixed set of test images as training goes on.

The evaluation's watch part, ``FeatureSnapshots``, is a training hook that records ``model.features(x)``
at given fractions of the optimiser steps (10/30/50/70/100 % by default, as in the paper's Figure 5),
in eval mode, for the same test images every time, into ``features.npz`` in its watch folder. Its
after part gives, per fraction, numbers that need no eyes (silhouette score and k-NN accuracy of the
features) and draws t-SNE scatter rows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..files import atomic_path
from ..models.modes import eval_mode
from ..train.hooks import Hooks
from .registry import Drawing, default_watch_folder, register_evaluation

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 1.0)
FILE = "features.npz"


def fixed_images(labels: np.ndarray, count: int | None, seed: int = 0) -> np.ndarray:
    """A seeded, class-balanced choice of ``count`` images (all when ``count`` is None or too large)."""
    n = len(labels)
    if count is None or count >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), count // len(classes))
    per[: count % len(classes)] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=min(k, int((labels == c).sum())), replace=False)
              for c, k in zip(classes, per)]
    return np.sort(np.concatenate(chosen))


@torch.no_grad()
def extract_features(model, normalize, images: np.ndarray, device, batch_size: int = 500) -> np.ndarray:
    """``model.features`` of uint8 images, in eval mode (the model's mode is given back)."""
    with eval_mode(model):
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(images[i:i + batch_size]).to(device)
            out.append(model.features(normalize(x)).float().flatten(1).cpu())
    return torch.cat(out).numpy()


class FeatureSnapshots(Hooks):
    """Training hooks: features of fixed test images at ``fractions`` of the optimiser steps, each
    written to ``folder/features.npz`` as it is taken, so a resumed run keeps the ones it has.

    ``images`` class-balanced test images (seeded), chosen among the first ``pool`` of a seeded
    shuffle of the test split when ``pool`` is given (the images ``max_images`` picks elsewhere).
    """

    def __init__(self, folder: str | Path | None, fractions: Sequence[float] = FRACTIONS, images: int | None = 500,
                 pool: int | None = None, seed: int = 0):
        fractions = sorted(float(f) for f in fractions)
        if not fractions or not all(0 < f <= 1 for f in fractions):
            raise UserError(f"snapshot fractions must lie in (0, 1], got {fractions}")
        self.fractions, self.count, self.pool, self.seed = fractions, images, pool, seed
        self.folder = Path(folder) if folder is not None else None
        self.features: dict[float, np.ndarray] = {}
        self.steps: dict[float, int] = {}

    def on_start(self, state):
        self.model, self.parts, self.steps_per_epoch = state.model, state.parts, state.steps_per_epoch
        total = state.total_steps
        self.at = {}
        for f in self.fractions:
            self.at.setdefault(max(1, math.ceil(f * total)), f)
        test = self.parts.data.test
        if self.pool is not None:
            from .robustness import evaluation_images

            test = test.take(evaluation_images(len(test), self.pool))
        self.index = fixed_images(test.labels, self.count, self.seed)
        self.images, self.labels = test.images[self.index], test.labels[self.index]
        file = self.file
        if file is not None and file.is_file():  # a resumed run: keep what was taken before the cut
            with np.load(file) as z:
                if np.array_equal(z["index"], self.index):
                    for i, f in enumerate(z["fractions"]):
                        self.features[float(f)], self.steps[float(f)] = z["features"][i], int(z["steps"][i])

    @property
    def file(self) -> Path | None:
        return self.folder / FILE if self.folder is not None else None

    def on_step(self, epoch, step):
        done = (epoch - 1) * self.steps_per_epoch + step + 1
        if done in self.at:
            f = self.at[done]
            self.features[f] = extract_features(self.model, self.parts.normalize, self.images, self.parts.device)
            self.steps[f] = done
            if self.folder is not None:
                self.save(self.file)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fr = sorted(self.features)
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, fractions=np.array(fr), steps=np.array([self.steps[f] for f in fr]),
                                features=np.stack([self.features[f] for f in fr]), labels=self.labels,
                                index=self.index)
        return path


def load_snapshots(path: str | Path) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """``({fraction: features [N, F]}, labels [N])`` from a ``features.npz``."""
    with np.load(path) as z:
        return {float(f): z["features"][i] for i, f in enumerate(z["fractions"])}, z["labels"]


def geometry(features: np.ndarray, labels: np.ndarray, neighbours: int = 10, folds: int = 5, seed: int = 0) -> dict:
    """Silhouette score (by class, euclidean) and cross-validated k-NN accuracy of the features."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    if len(np.unique(labels)) < 2:
        raise UserError("feature geometry needs images of at least two classes")
    sil = float(silhouette_score(features, labels))
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    folds = max(2, min(folds, smallest))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    knn = cross_val_score(KNeighborsClassifier(n_neighbors=neighbours), features, labels, cv=cv).mean()
    return {"silhouette": sil, "knn_accuracy": float(knn)}


def geometry_rows(snapshots: Mapping[float, np.ndarray], labels: np.ndarray, **options) -> list[dict]:
    rows = []
    for f in sorted(snapshots):
        g = geometry(snapshots[f], labels, **options)
        rows += [{"metric": k, "value": v, "fraction": f, "images": len(labels)} for k, v in g.items()]
    return rows


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """A 2-D t-SNE embedding (scikit-learn, PCA init, seeded)."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(features) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def plot_tsne(rows: Mapping[str, tuple[Mapping[float, np.ndarray], np.ndarray]], path: str | Path,
              classes: Sequence[str] | None = None, seed: int = 0) -> Path:
    """One row of t-SNE scatter plots per run (``{name: (snapshots, labels)}``), one column per fraction."""
    from .figures import pyplot, save_figure

    plt = pyplot()
    fractions = sorted({f for snaps, _ in rows.values() for f in snaps})
    fig, axes = plt.subplots(len(rows), len(fractions), figsize=(2.4 * len(fractions), 2.4 * len(rows)),
                             squeeze=False)
    for r, (name, (snaps, labels)) in enumerate(rows.items()):
        for c, f in enumerate(fractions):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if f in snaps:
                xy = tsne(snaps[f], seed)
                ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=3, vmin=0, vmax=9)
            if r == 0:
                ax.set_title(f"{100 * f:g} % of training", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if classes is not None and rows:
        handles = [plt.Line2D([], [], marker="o", ls="", color=plt.get_cmap("tab10")(i), label=n)
                   for i, n in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=min(10, len(classes)), fontsize=7)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout()
    return save_figure(fig, path)


def snapshot_file(run, watch: str | Path | None) -> Path | None:
    """Where the watch part left the snapshots: ``watch``, else the run's default watch folder."""
    folder = Path(watch) if watch is not None else None
    if folder is None and getattr(run, "path", None) is not None:
        folder = default_watch_folder(run.path, "features")
    if folder is not None and (folder / FILE).is_file():
        return folder / FILE
    return None


@register_evaluation("features", "silhouette and k-NN accuracy of encoder features (per training fraction)",
                     watch=FeatureSnapshots,
                     drawing=Drawing(x="fraction", names={"fraction": "fraction of training",
                                                          "knn_accuracy": "k-NN accuracy"}))
def features(run, images: int | None = 500, neighbours: int = 10, figure: str | None = None,
             watch: str | Path | None = None) -> list[dict]:
    """Rows ``{"metric": "silhouette" | "knn_accuracy", "value", "fraction"}`` from the snapshots the
    watch part took during training when there are any, else from the final weights (fraction 1.0)."""
    parts = run.parts
    file = snapshot_file(run, watch)
    if file is not None:
        snapshots, labels = load_snapshots(file)
    else:
        test = parts.data.test
        idx = fixed_images(test.labels, images)
        snapshots = {1.0: extract_features(parts.model, parts.normalize, test.images[idx], parts.device)}
        labels = test.labels[idx]
    if figure:
        plot_tsne({parts.config["label"]["name"]: (snapshots, labels)}, figure, classes=parts.data.classes)
    return geometry_rows(snapshots, labels, neighbours=neighbours)


def train_with_features(config: dict, out: str | Path, fractions: Sequence[float] = FRACTIONS,
                        images: int | None = 500, hooks=None, resume: bool = False):
    """Train one run while its features are snapshotted into ``out/watch/features``; returns
    ``(run, FeatureSnapshots)``."""
    from ..train import train

    snaps = FeatureSnapshots(default_watch_folder(out, "features"), fractions, images)
    return train(config, out=out, resume=resume, hooks=[snaps, hooks]), snaps
