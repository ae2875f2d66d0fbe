"""Long-tailed training splits, class-balanced losses in training, per-class accuracy."""
from __future__ import annotations

import numpy as np
import pytest

import labelrep
from labelrep.data.subsets import long_tail_counts
from labelrep.evaluate import run_evaluation
from labelrep.evaluate.per_class import class_groups, per_class_rows


def test_per_class_rows_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    predictions = np.array([0, 0, 1, 0, 0, 0, 2, 1])
    rows = per_class_rows(predictions, labels, ["a", "b", "c"], np.array([50, 10, 5]))
    by = {(r["metric"], r.get("class", r.get("group"))): r for r in rows}
    assert by[("class_accuracy", "a")]["value"] == 1.0 and by[("class_accuracy", "a")]["group"] == "head"
    assert by[("class_accuracy", "b")]["value"] == 0.5 and by[("class_accuracy", "b")]["group"] == "middle"
    assert by[("class_accuracy", "c")]["value"] == 0.25 and by[("class_accuracy", "c")]["train_images"] == 5
    assert by[("group_accuracy", "tail")]["value"] == 0.25
    assert by[("balanced_accuracy", None)]["value"] == pytest.approx((1 + 0.5 + 0.25) / 3)
    # ten classes: the four largest are the head, then three and three; ranked by count, not index
    counts = np.array([5, 500, 400, 300, 200, 100, 50, 40, 30, 20])
    assert class_groups(counts) == ["tail", "head", "head", "head", "head", "middle", "middle", "middle", "tail",
                                    "tail"]


def _digits(loss: str, **extra) -> dict:
    return {"data": {"dataset": "digits", "imbalance": 10},
            "label": {"name": "categorical", "options": {"loss": loss, **extra}},
            "model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}},
            "optim": {"batch_size": 64}, "train": {"epochs": 6, "device": "cpu"}}


def test_long_tailed_digits_train_with_class_balanced_losses(one_torch_thread):
    runs = {loss: labelrep.train(_digits(loss)) for loss in ("ce", "cb_focal")}
    parts = runs["ce"].parts
    smallest = int(np.bincount(parts.data.train.labels).min())
    expected = long_tail_counts(smallest, 10, 10)
    assert np.bincount(parts.train.labels, minlength=10).tolist() == expected
    focal = runs["cb_focal"].parts
    assert focal.label_space.loss_fn.bound["weights"][-1] > 5 * focal.label_space.loss_fn.bound["weights"][0]
    tails = {}
    for loss, run in runs.items():
        rows = run_evaluation("per_class", run)
        groups = {r["group"]: r["value"] for r in rows if r["metric"] == "group_accuracy"}
        assert groups["head"] > 0.7, loss  # both learn the large classes
        tails[loss] = groups["tail"]
        per_class = [r for r in rows if r["metric"] == "class_accuracy"]
        assert [r["train_images"] for r in per_class] == expected
    # 13 to 19 tail images a class: cross-entropy ignores them (0.00 at seed 0), the class-balanced
    # focal loss lifts them (0.51)
    assert tails["cb_focal"] > tails["ce"] + 0.3, tails
