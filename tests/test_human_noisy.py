"""CIFAR-10N noisy labels: checksum before unpickling, the label swap, the download; the shared file."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from labelrep.data import ImageData, Split, download
from labelrep.data.cifar10n import FILE, apply_train_labels, find_human_labels, read_human_labels
from labelrep.data.sources import CIFAR10_CLASSES
from labelrep.errors import UserError


@pytest.fixture(scope="module")
def human_file(shared_data) -> Path:
    path = shared_data / "cifar10n" / FILE
    if not path.is_file():
        pytest.skip(f"needs {path}")
    return path


class _Planted:
    """Unpickling this writes a marker file: proof that a foreign pickle was opened."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_with_another_sha256_is_refused_before_unpickling(tmp_path):
    marker = tmp_path / "was-unpickled"
    foreign = tmp_path / FILE
    foreign.write_bytes(pickle.dumps({"clean_label": _Planted(marker)}))
    with pytest.raises(UserError, match="not the published"):
        read_human_labels(foreign)
    assert not marker.exists()
    with pytest.raises(UserError, match="not the published"):
        find_human_labels(None, tmp_path, download=False)  # found beside the data: still checked
    assert not marker.exists()


def test_clean_labels_equal_the_shared_copys_training_order(human_file, cifar_order_labels):
    labels = read_human_labels(human_file)
    assert sorted(labels) == ["aggre_label", "clean_label", "random_label1", "random_label2", "random_label3",
                              "worse_label"]
    assert np.array_equal(labels["clean_label"], cifar_order_labels["train"])
    noise = {k: float((v != labels["clean_label"]).mean()) for k, v in labels.items()}
    assert noise["aggre_label"] == pytest.approx(0.0903, abs=5e-4)  # the paper's 9.03 %
    assert noise["worse_label"] == pytest.approx(0.4021, abs=5e-4)  # 40.21 %
    assert all(0.16 < noise[f"random_label{i}"] < 0.19 for i in (1, 2, 3))


def _cifar_like(labels: np.ndarray, name: str = "cifar10") -> ImageData:
    images = np.zeros((len(labels), 3, 2, 2), dtype=np.uint8)
    return ImageData(name, list(CIFAR10_CLASSES), Split(images, labels.copy()), Split(images[:10], labels[:10].copy()))


def test_train_labels_swap_the_training_split_only(human_file):
    labels = read_human_labels(human_file)
    data = _cifar_like(labels["clean_label"])
    assert apply_train_labels(data, "clean") is data  # no file needed
    worse = apply_train_labels(data, "worse", file=human_file)
    assert np.array_equal(worse.train.labels, labels["worse_label"])
    assert np.array_equal(worse.test.labels, data.test.labels) and worse.train.images is data.train.images
    assert np.array_equal(data.train.labels, labels["clean_label"])  # the original is left alone
    shuffled = _cifar_like(np.roll(labels["clean_label"], 1))
    with pytest.raises(UserError, match="original order"):
        apply_train_labels(shuffled, "aggre", file=human_file)
    with pytest.raises(UserError, match="CIFAR-10 only"):
        apply_train_labels(_cifar_like(labels["clean_label"], "cifar100"), "aggre", file=human_file)
    with pytest.raises(UserError, match="must be one of"):
        apply_train_labels(data, "noisy", file=human_file)


def test_download_is_checked_by_sha256(human_file, http_folder, tmp_path, monkeypatch):
    www, url = http_folder
    shutil.copy(human_file, www / FILE)
    monkeypatch.setenv("LABELREP_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(download.RESOURCES, FILE, (f"{url}/{FILE}", download.RESOURCES[FILE][1]))
    with pytest.raises(UserError, match="--download"):
        find_human_labels(None, None, download=False)
    path = find_human_labels(None, None, download=True)
    assert path.parent == tmp_path / "cache" / "cifar10n"
    assert len(read_human_labels(path)["aggre_label"]) == 50000
    monkeypatch.setitem(download.RESOURCES, FILE, (f"{url}/{FILE}", "sha256:" + "0" * 64))
    with pytest.raises(UserError, match="checksum"):
        download.fetch(FILE, tmp_path / "other")


def test_train_labels_on_another_dataset_is_a_user_error(tmp_path):
    import labelrep

    out = tmp_path / "run"
    with pytest.raises(UserError, match="CIFAR-10 only"):
        labelrep.train({"data": {"dataset": "digits", "train_labels": "aggre"}}, out=out)
    assert not out.exists()  # nothing half-written
