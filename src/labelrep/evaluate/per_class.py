"""Per-class accuracy, grouped by how many training images each class had (head, middle, tail).

Rows: ``class_accuracy`` (keys ``class``, ``train_images``, ``group``) for every class;
``group_accuracy`` (key ``group``: head, middle, tail; the mean of its classes' accuracies);
``balanced_accuracy`` (the mean over classes). Groups are thirds of the classes ranked by their
training images in the run's training split (ties by class index), so on a long-tailed split the
head holds the largest classes; on a balanced split the groups are a ranking of equals.
"""
from __future__ import annotations

import numpy as np

from .registry import Drawing, register_evaluation

GROUPS = ("head", "middle", "tail")


def class_groups(train_counts: np.ndarray) -> list[str]:
    """The group of each class: thirds of the classes ranked by training images, largest first."""
    order = np.argsort(-np.asarray(train_counts), kind="stable")
    group = [""] * len(order)
    for name, members in zip(GROUPS, np.array_split(order, len(GROUPS))):
        for c in members:
            group[int(c)] = name
    return group


def per_class_rows(predictions: np.ndarray, labels: np.ndarray, classes: list[str],
                   train_counts: np.ndarray) -> list[dict]:
    groups = class_groups(train_counts)
    accs = []
    rows = []
    for c, name in enumerate(classes):
        mine = labels == c
        acc = float((predictions[mine] == c).mean()) if mine.any() else float("nan")
        accs.append(acc)
        rows.append({"metric": "class_accuracy", "value": acc, "class": name,
                     "train_images": int(train_counts[c]), "group": groups[c]})
    accs = np.asarray(accs)
    for g in GROUPS:
        members = [c for c in range(len(classes)) if groups[c] == g]
        if members:
            rows.append({"metric": "group_accuracy", "value": float(np.nanmean(accs[members])), "group": g,
                         "classes": len(members)})
    rows.append({"metric": "balanced_accuracy", "value": float(np.nanmean(accs))})
    return rows


# Drawn as each class's accuracy against its training images (a long tail reads left to right); the
# group and balanced accuracies are the notes beside it.
@register_evaluation("per_class", "accuracy of each class and of the head / middle / tail thirds by training images",
                     drawing=Drawing(x="train_images", curves=("class_accuracy",), log_x=True,
                                     title="accuracy per class against its training images",
                                     ignore=("images", "classes", "class", "group")))
def per_class_evaluation(run) -> list[dict]:
    from ..scoring import predict_scores

    parts = run.parts
    test = parts.data.test
    scores = predict_scores(run.model, parts.label_space, parts.loader(test)).cpu()
    counts = np.bincount(parts.train.labels, minlength=len(parts.data.classes))
    return per_class_rows(scores.argmax(1).numpy(), test.labels, parts.data.classes, counts)
