"""Feature snapshots during training and their geometry numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labelrep.evaluate import run_evaluation
from labelrep.evaluate.features import (FeatureSnapshots, fixed_images, geometry, load_snapshots, plot_tsne,
                                        train_with_features)

from evaluate_helpers import digits_result


def test_geometry_separates_clusters_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    clustered = rng.normal(size=(200, 8)) * 0.1 + np.eye(4, 8)[labels] * 5
    g = geometry(clustered, labels)
    assert g["silhouette"] > 0.8 and g["knn_accuracy"] == 1.0
    noise = geometry(rng.normal(size=(200, 8)), labels)
    assert noise["silhouette"] < 0.05 and noise["knn_accuracy"] < 0.45


def test_fixed_images_are_class_balanced_and_repeatable():
    labels = np.repeat(np.arange(5), [30, 40, 50, 60, 70])
    a, b = fixed_images(labels, 50), fixed_images(labels, 50)
    assert np.array_equal(a, b) and len(a) == 50
    assert np.bincount(labels[a]).tolist() == [10] * 5


def test_snapshots_at_training_fractions_do_not_change_training(tmp_path):
    cfg = {"data": {"dataset": "digits"}, "train": {"epochs": 4, "device": "cpu", "seed": 0}}
    result, snaps = train_with_features(cfg, out=tmp_path / "run", images=200)
    plain = digits_result()  # the same config, trained without hooks
    # snapshots switch to eval mode and back: the run is the same as one without them
    assert result.summary["test_accuracy"] == plain.summary["test_accuracy"]
    assert result.summary["final_train_loss"] == plain.summary["final_train_loss"]
    total = 4 * snaps.steps_per_epoch
    assert sorted(snaps.steps.values()) == sorted({max(1, math.ceil(f * total)) for f in (0.1, 0.3, 0.5, 0.7, 1.0)})
    feats, labels = load_snapshots(tmp_path / "run" / "watch" / "features" / "features.npz")
    assert sorted(feats) == [0.1, 0.3, 0.5, 0.7, 1.0]
    assert feats[1.0].shape == (200, result.parts.model.encoder.num_features)
    assert not np.allclose(feats[0.1], feats[1.0])
    assert np.bincount(labels).min() == 20  # class-balanced fixed images

    from labelrep.run import load_run

    rows = run_evaluation("features", load_run(tmp_path / "run"))
    knn = {r["fraction"]: r["value"] for r in rows if r["metric"] == "knn_accuracy"}
    assert set(knn) == {0.1, 0.3, 0.5, 0.7, 1.0}
    assert knn[1.0] > 0.85 and knn[1.0] >= knn[0.1]

    plot_tsne({"categorical": ({f: feats[f][:100] for f in (0.1, 1.0)}, labels[:100])}, tmp_path / "tsne.png",
              classes=result.parts.data.classes)
    assert (tmp_path / "tsne.png").stat().st_size > 5000


def test_features_evaluation_without_snapshots_uses_final_weights():
    rows = run_evaluation("features", digits_result(), images=200)
    assert {r["fraction"] for r in rows} == {1.0}
    assert [r for r in rows if r["metric"] == "knn_accuracy"][0]["value"] > 0.85


def test_bad_fractions_are_a_user_error():
    from labelrep.errors import UserError

    with pytest.raises(UserError):
        FeatureSnapshots(None, [0.0, 1.5])
