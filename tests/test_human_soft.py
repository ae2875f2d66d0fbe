"""CIFAR-10H: rows in test order (the shared file), the k-fold source, soft-label metrics."""
from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import labelrep
from labelrep.data.cifar10h import FILE, fold_indices, read_probs
from labelrep.data.download import PICKLE_HASHES
from labelrep.data.sources import CIFAR10_CLASSES
from labelrep.errors import UserError
from labelrep.evaluate import run_evaluation
from labelrep.evaluate.soft_labels import soft_label_rows


@pytest.fixture(scope="module")
def probs_file(shared_data) -> Path:
    path = shared_data / FILE
    if not path.is_file():
        pytest.skip(f"needs {path}")
    return path


def test_rows_align_with_the_test_order(probs_file, cifar_order_labels):
    probs = read_probs(probs_file)
    test = cifar_order_labels["test"]
    assert probs.shape == (10000, 10) and np.allclose(probs.sum(1), 1.0)
    # the annotators' majority is CIFAR-10's label for 99.2 % of images in this order, chance otherwise
    assert (probs.argmax(1) == test).mean() == pytest.approx(0.9921, abs=1e-4)
    assert (probs.argmax(1) == np.roll(test, 1)).mean() < 0.15
    counts = np.load(probs_file.with_name("cifar10h-counts.npy"))
    assert np.allclose(probs, counts / counts.sum(1, keepdims=True)) and counts.sum(1).mean() == pytest.approx(51.1,
                                                                                                              abs=0.1)


def test_a_file_with_another_sha256_is_refused(tmp_path):
    np.save(tmp_path / FILE, np.full((10000, 10), 0.1))
    with pytest.raises(UserError, match="not the published"):
        read_probs(tmp_path / FILE)


def test_folds_are_stratified_disjoint_and_cover_everything():
    labels = np.repeat(np.arange(10), 100)
    held = [fold_indices(labels, 10, k, seed=0)[1] for k in range(10)]
    assert np.array_equal(np.sort(np.concatenate(held)), np.arange(1000))
    assert all(np.bincount(labels[h], minlength=10).tolist() == [10] * 10 for h in held)
    train, first = fold_indices(labels, 10, 0, seed=0)
    assert len(np.intersect1d(train, first)) == 0 and len(train) == 900
    assert not np.array_equal(first, fold_indices(labels, 10, 0, seed=1)[1])
    with pytest.raises(UserError, match="fold must be"):
        fold_indices(labels, 10, 10, seed=0)


def test_soft_label_rows_by_hand():
    # scores = log of the targets: the cross-entropy equals the targets' entropy, its floor
    targets = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], dtype=torch.float64)
    scores = torch.log(targets.clamp_min(1e-30))
    rows = {r["metric"]: r["value"] for r in soft_label_rows(scores, torch.tensor([0, 2]), targets)}
    entropy = (math.log(2) + -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))) / 2
    assert rows["target_ce"] == pytest.approx(entropy) and rows["target_entropy"] == pytest.approx(entropy)
    assert rows["accuracy"] == 1.0  # argmax of [.5, .5] is class 0
    assert rows["nll"] == pytest.approx((math.log(2) - math.log(0.75)) / 2)
    # ECE, one bin each: |1 - 0.5| and |1 - 0.75| at confidence 0.5 and 0.75
    assert rows["ece"] == pytest.approx((0.5 + 0.25) / 2)
    assert "target_ce" not in {r["metric"] for r in soft_label_rows(scores, torch.tensor([0, 2]), None)}


def _write_cifar10(root: Path, test_labels: np.ndarray, train_per_batch: int = 40) -> dict:
    """CIFAR-10 pickles with the real test labels (so the human rows line up) and random pixels; returns
    their md5s, to stand in for the published ones (only those are unpickled)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (train_per_batch, 3072), dtype=np.uint8),
                         "labels": list(rng.integers(0, 10, train_per_batch))}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": rng.integers(0, 256, (len(test_labels), 3072), dtype=np.uint8),
                     "labels": test_labels.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_CLASSES}, f)
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def fake_cifar(cifar_order_labels, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("c10")
    return root, _write_cifar10(root, cifar_order_labels["test"])


@pytest.fixture
def cifar_root(fake_cifar, monkeypatch) -> Path:
    root, hashes = fake_cifar
    monkeypatch.setitem(PICKLE_HASHES, "cifar-10-batches-py", hashes)
    return root


def test_the_source_trains_on_the_test_images_with_human_targets(cifar_root, probs_file):
    probs = read_probs(probs_file)
    data = labelrep.load_dataset("cifar10h", cifar_root, probs_file=str(probs_file), fold=3)
    assert len(data.train) == 9000 and len(data.test) == 1000
    assert np.bincount(data.test.labels, minlength=10).tolist() == [100] * 10
    assert len(np.intersect1d(data.train.index, data.test.index)) == 0
    # each row belongs to its image: index = position in CIFAR-10's test order
    np.testing.assert_allclose(data.train.targets, probs[data.train.index].astype(np.float32))
    np.testing.assert_allclose(data.test.targets, probs[data.test.index].astype(np.float32))
    assert data.extra_tests["cifar10_train"].images.shape == (200, 3, 32, 32)
    hard = labelrep.load_dataset("cifar10h", cifar_root, probs_file=str(probs_file), fold=3, targets="majority")
    assert np.array_equal(hard.train.targets.argmax(1), probs[hard.train.index].argmax(1))
    assert set(np.unique(hard.train.targets)) == {0.0, 1.0}
    np.testing.assert_allclose(hard.test.targets, data.test.targets)  # held out: always the human rows
    with pytest.raises(UserError, match="targets must be"):
        labelrep.load_dataset("cifar10h", cifar_root, probs_file=str(probs_file), targets="hard")


def test_a_shuffled_test_order_is_refused(probs_file, cifar_order_labels, tmp_path, monkeypatch):
    hashes = _write_cifar10(tmp_path, np.roll(cifar_order_labels["test"], 1), train_per_batch=2)
    monkeypatch.setitem(PICKLE_HASHES, "cifar-10-batches-py", hashes)
    with pytest.raises(UserError, match="original order"):
        labelrep.load_dataset("cifar10h", tmp_path, probs_file=str(probs_file))


def test_a_run_on_human_targets_reports_both_test_sets(cifar_root, probs_file, one_torch_thread):
    config = {"data": {"dataset": "cifar10h", "data_dir": str(cifar_root), "fraction": 0.05,
                       "options": {"probs_file": str(probs_file)}},
              "target": {"name": "per_image"},
              "model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}},
              "train": {"epochs": 1, "device": "cpu"}}
    run = labelrep.train(config)
    rows = run_evaluation("soft_labels", run)
    by = {(r["split"], r["metric"]): r["value"] for r in rows}
    assert {s for s, _ in by} == {"test", "cifar10_train"}
    assert by[("test", "target_ce")] > by[("test", "target_entropy")] > 0.1  # Gibbs: CE >= entropy
    assert ("cifar10_train", "target_ce") not in by  # no human labels for CIFAR-10's training images
    assert by[("test", "accuracy")] == pytest.approx(run.summary["test_accuracy"], abs=1e-6)
    assert all(0.0 <= by[(s, "ece")] <= 1.0 for s in ("test", "cifar10_train"))
