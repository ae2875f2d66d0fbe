"""Multi-label metrics done the VOC way: average precision per class over the images that count for it
(difficult entries, NaN in the targets, left out), and their mean over classes.

- ``ap`` / ``map``: scikit-learn's average precision (the step-wise area, no interpolation), per class
  and its mean: equal to scikit-learn's ``average_precision_score(..., average="macro")`` and
  torchmetrics' macro AP when nothing is masked;
- ``map_voc``: the VOC 2010+ devkit's AP (precision made monotone, then the area), per class, mean;
- ``per_image_ap_mean``: the seed's number (keshik6/pascal-voc-classification): scikit-learn's AP of
  each image over its classes, difficult counted as absent, averaged over images. It is not the VOC
  metric and is only ever reported under this name;
- ``f1_macro`` / ``f1_micro``: decisions by the label space's threshold (per class, not argmax).

Predictions go to a CSV (``image, score:<class>..., target:<class>...``; a difficult target is empty)
from which ``plot_pr_curves`` redraws the per-class precision-recall curves.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from ..files import atomic_write_text
from ..labels.multilabel import _valid, class_average_precision  # noqa: F401  (the loop scores with them too)
from .registry import Drawing, register_evaluation

RECALL_LEVELS = tuple(i / 10 for i in range(11))
NAMES = {"map": "mAP", "map_voc": "mAP (devkit)", "per_image_ap_mean": "per-image AP mean (seed's)",
         "f1_macro": "F1 macro", "f1_micro": "F1 micro", "ap": "AP"}


def voc_average_precision(scores, targets) -> np.ndarray:
    """``[C]`` the VOC 2010+ devkit's AP: the area under the monotone envelope of precision against recall."""
    from sklearn.metrics import precision_recall_curve

    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        y, s = _valid(scores, targets, c)
        if not y.any():
            continue
        precision, recall, _ = precision_recall_curve(y, s)
        precision, recall = precision[::-1], recall[::-1]  # recall rising from 0
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        out[c] = float(np.sum(np.diff(recall) * envelope[1:]))
    return out


def per_image_ap_mean(scores, targets) -> float:
    """The seed's per-image average (difficult counted as absent; images without a positive skipped)."""
    from sklearn.metrics import average_precision_score

    scores, targets = np.asarray(scores, dtype=np.float64), np.nan_to_num(np.asarray(targets, dtype=np.float64))
    values = [average_precision_score(t > 0.5, s) for s, t in zip(scores, targets) if (t > 0.5).any()]
    return float(np.mean(values)) if values else float("nan")


def interpolated_precision(scores, targets, levels: Sequence[float] = RECALL_LEVELS) -> np.ndarray:
    """``[C, L]`` the highest precision at recall >= each level (the PR curve's envelope), per class."""
    from sklearn.metrics import precision_recall_curve

    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    out = np.full((scores.shape[1], len(levels)), np.nan)
    for c in range(scores.shape[1]):
        y, s = _valid(scores, targets, c)
        if y.any():
            precision, recall, _ = precision_recall_curve(y, s)
            out[c] = [precision[recall >= r].max() for r in levels]
    return out


def f1_scores(decisions, targets) -> tuple[float, float]:
    """Macro and micro F1 of thresholded decisions over the entries that count."""
    decisions = np.asarray(decisions, dtype=bool)
    targets = np.asarray(targets, dtype=np.float64)
    keep = ~np.isnan(targets)
    truth = np.nan_to_num(targets) > 0.5
    tp = (decisions & truth & keep).sum(0)
    fp = (decisions & ~truth & keep).sum(0)
    fn = (~decisions & truth & keep).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"), float(micro)


def metric_rows(scores, targets, classes: Sequence[str], decisions=None) -> list[dict]:
    """Tidy rows: ``map``, ``map_voc``, ``per_image_ap_mean``, F1 at the threshold and ``ap`` per class."""
    ap = class_average_precision(scores, targets)
    if np.isnan(ap).all():
        raise UserError("no class has a positive test image that counts; average precision is undefined")
    rows = [{"metric": "map", "value": float(np.nanmean(ap))},
            {"metric": "map_voc", "value": float(np.nanmean(voc_average_precision(scores, targets)))},
            {"metric": "per_image_ap_mean", "value": per_image_ap_mean(scores, targets)}]
    if decisions is not None:
        macro, micro = f1_scores(decisions, targets)
        rows += [{"metric": "f1_macro", "value": macro}, {"metric": "f1_micro", "value": micro}]
    rows += [{"metric": "ap", "value": float(v), "class": c} for c, v in zip(classes, ap) if not math.isnan(v)]
    return rows


# ---------------------------------------------------------------- predictions on disk, figures

def predictions_csv(classes: Sequence[str], scores, targets, images=None) -> str:
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    images = np.arange(len(scores)) if images is None else np.asarray(images)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", *(f"score:{c}" for c in classes), *(f"target:{c}" for c in classes)])
    for i, s, t in zip(images, scores, targets):
        writer.writerow([int(i), *(f"{v:.6g}" for v in s), *("" if math.isnan(v) else int(v) for v in t)])
    return buf.getvalue()


def read_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(classes, scores, targets, images)`` back from a predictions CSV (difficult targets NaN)."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        classes = [h.split(":", 1)[1] for h in header if h.startswith("score:")]
        n = len(classes)
        if header != ["image", *(f"score:{c}" for c in classes), *(f"target:{c}" for c in classes)]:
            raise ValueError("unexpected columns")
        body = rows[1:]
        images = np.array([int(r[0]) for r in body])
        scores = np.array([[float(v) for v in r[1:1 + n]] for r in body])
        targets = np.array([[float(v) if v != "" else np.nan for v in r[1 + n:]] for r in body])
    except (OSError, IndexError, ValueError) as err:
        raise UserError(f"{path} is not a predictions file of the multilabel evaluation ({err})") from None
    return classes, scores, targets, images


def plot_pr_curves(scores, targets, classes: Sequence[str], path: str | Path, title: str | None = None) -> Path:
    """One small panel per class: precision against recall, its AP in the title."""
    from sklearn.metrics import precision_recall_curve

    from .figures import pyplot, save_figure

    plt = pyplot()
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    ap = class_average_precision(scores, targets)
    cols = min(5, len(classes))
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.2 * rows + 0.4), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    flat = [ax for line in axes for ax in line]
    for c, (ax, name) in enumerate(zip(flat, classes)):
        y, s = _valid(scores, targets, c)
        if y.any():
            precision, recall, _ = precision_recall_curve(y, s)
            ax.step(recall, precision, where="post", lw=1.3)
            ax.axhline(y.mean(), color="grey", lw=0.8, ls="--")  # chance: the class's prevalence
        ax.set_title(f"{name}: AP {ap[c]:.3f}" if not math.isnan(ap[c]) else f"{name}: no positive", fontsize=8)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in flat[len(classes):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("recall", fontsize=8)
    for line in axes:
        line[0].set_ylabel("precision", fontsize=8)
    fig.suptitle(title or f"precision-recall per class (mAP {np.nanmean(ap):.3f}; dashed: prevalence)", fontsize=9)
    return save_figure(fig, path)


# ---------------------------------------------------------------- evaluations

def split_predictions(run, split: str = "test", crops: str = "none", resize: int | None = None,
                      crop: int | None = None, max_images: int | None = None, seed: int = 0):
    """Scores and multi-hot targets (NaN: difficult) of a run's test or validation images."""
    from .robustness import evaluation_images
    from .test_time import predict_scores_crops

    parts = run.parts
    if split not in ("test", "val"):
        raise UserError(f"the multilabel evaluation scores split 'test' or 'val', got {split!r}")
    data = parts.data.test if split == "test" else parts.val
    if data is None:
        raise UserError("the run has no validation split (data.val_size); evaluate split 'test'")
    chosen = evaluation_images(len(data), max_images, seed)
    data = data.take(chosen)
    if data.targets is not None:
        targets = np.asarray(data.targets, dtype=np.float64)
    else:  # one class per image: its one-hot row
        targets = np.eye(parts.label_space.num_classes)[data.labels]
    if targets.shape != (len(data), parts.label_space.num_classes):
        raise UserError(f"the {split} images' targets have shape {targets.shape}; class-wise AP needs one "
                        f"multi-hot row of {parts.label_space.num_classes} classes per image")
    scores = predict_scores_crops(parts.model, parts.label_space, parts.loader(data), crops, resize, crop)
    return scores.cpu().numpy().astype(np.float64), targets, chosen


@register_evaluation("multilabel", "class-wise average precision (difficult left out), mAP, F1 at the threshold",
                     multi_label=True, drawing=Drawing(names=NAMES))
def multilabel_evaluation(run, split: str = "test", crops: str | Sequence[str] = "none", resize: int | None = None,
                          crop: int | None = None, max_images: int | None = None, seed: int = 0,
                          figure: str | None = None, predictions: bool = True) -> list[dict]:
    """``crops``: one of none / five / ten, or a list of them (rows for each; the per-class AP, the figure
    and the first CSV come from the first). ``figure``: a PNG of the per-class PR curves; ``predictions``:
    the scores as CSV in the run folder (``multilabel-<split>-<crops>.csv``), from which ``plot_pr_curves``
    redraws the curves."""
    space = run.label_space
    modes = [crops] if isinstance(crops, str) else list(crops)
    if not modes:
        raise UserError("the multilabel evaluation needs at least one crops mode (none, five, ten)")
    rows = []
    for i, mode in enumerate(modes):
        scores, targets, chosen = split_predictions(run, split, mode, resize, crop, max_images, seed)
        decisions = space.predict(torch.as_tensor(scores)).numpy() if space.multi_label else None
        mine = metric_rows(scores, targets, space.classes, decisions)
        rows += [{**r, "split": split, "crops": mode} for r in mine if i == 0 or "class" not in r]
        if predictions and getattr(run, "path", None) is not None:
            atomic_write_text(Path(run.path) / f"multilabel-{split}-{mode}.csv",
                              predictions_csv(space.classes, scores, targets, chosen))
        if figure and i == 0:
            plot_pr_curves(scores, targets, space.classes, figure)
    return rows


@register_evaluation("pr_curve", "per-class precision-recall curves: interpolated precision at recall 0, 0.1 ... 1",
                     multi_label=True, drawing=Drawing(x="recall", series=("class", "crops"), names=NAMES,
                                                       title="Precision against recall (interpolated)"))
def pr_curve_evaluation(run, split: str = "test", crops: str = "none", resize: int | None = None,
                        crop: int | None = None, max_images: int | None = None, seed: int = 0) -> list[dict]:
    """Rows ``precision`` at each ``recall`` level per class and for the mean over classes (the report
    draws them with a band over seeds)."""
    scores, targets, _ = split_predictions(run, split, crops, resize, crop, max_images, seed)
    curves = interpolated_precision(scores, targets)
    rows = []
    names = [*run.label_space.classes, "mean over classes"]
    table = np.vstack([curves, np.nanmean(curves, axis=0)])
    for name, curve in zip(names, table):
        rows += [{"metric": "precision", "value": float(p), "recall": r, "class": name, "crops": crops}
                 for r, p in zip(RECALL_LEVELS, curve) if not math.isnan(p)]
    return rows
