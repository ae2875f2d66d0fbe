"""Multi-label sources: a generated Pascal VOC tree (devkit layout, difficult flags), its download, and the
CIFAR-10 mosaic benchmark that goes through the same loader."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

import labelrep
from labelrep.data import download
from labelrep.data.mosaic import GREY, TILE, draw_mosaics
from labelrep.data.voc import NO_CLASS, VOC_CLASSES
from labelrep.errors import UserError


# image id -> {class: flag}; every other class is -1 (absent). 0 = difficult.
TRAIN = {"2008_000001": {"dog": 1, "person": 1}, "2008_000002": {"cat": 1, "dog": 0},
         "2008_000003": {"aeroplane": 1}, "2008_000004": {"person": 0, "bicycle": 1},
         "2008_000005": {"tvmonitor": 1, "sofa": 1, "person": 1}, "2008_000006": {"bird": 0}}
VAL = {"2008_000101": {"dog": 1}, "2008_000102": {"cat": 1, "person": 0},
       "2008_000103": {"car": 1, "bus": 1}, "2008_000104": {"horse": 1, "person": 1}}


def write_voc_tree(root: Path, splits: dict[str, dict[str, dict[str, int]]] | None = None) -> Path:
    """A tiny VOC 2012 devkit tree: JPEGs of assorted sizes and one ``<class>_<split>.txt`` per class."""
    from PIL import Image

    splits = splits or {"train": TRAIN, "val": VAL}
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, images in splits.items():
        for k, image_id in enumerate(images):
            size = (30 + 7 * k, 20 + 5 * k)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                voc / "JPEGImages" / f"{image_id}.jpg")
        for c in VOC_CLASSES:
            lines = "".join(f"{i} {flags.get(c, -1):2d}\n" for i, flags in images.items())
            (voc / "ImageSets" / "Main" / f"{c}_{split}.txt").write_text(lines)
    return voc


def expected_targets(images: dict[str, dict[str, int]]) -> np.ndarray:
    out = np.zeros((len(images), len(VOC_CLASSES)), dtype=np.float32)
    for i, flags in enumerate(images.values()):
        for c, flag in flags.items():
            out[i, VOC_CLASSES.index(c)] = 1.0 if flag == 1 else np.nan
    return out


@pytest.fixture
def voc_tree(tmp_path) -> Path:
    write_voc_tree(tmp_path / "voc")
    return tmp_path / "voc"


def test_voc_tree_loads_multihot_targets_and_difficult_mask(voc_tree):
    data = labelrep.load_dataset("voc2012", voc_tree, image_size=16)
    assert data.multi_label and data.classes == VOC_CLASSES == sorted(VOC_CLASSES)
    assert data.train.images.shape == (6, 3, 16, 16) and data.test.images.shape == (4, 3, 16, 16)
    np.testing.assert_array_equal(data.train.targets, expected_targets(TRAIN))  # NaN where difficult
    np.testing.assert_array_equal(data.test.targets, expected_targets(VAL))
    assert np.isnan(data.train.targets[1, VOC_CLASSES.index("dog")])      # "0" -> left out
    assert data.train.targets[1, VOC_CLASSES.index("cat")] == 1.0
    assert data.train.targets[2, VOC_CLASSES.index("dog")] == 0.0         # "-1" -> absent
    assert (data.train.labels == NO_CLASS).all()
    sub = data.train.take(np.array([4, 1]))  # subsets keep targets and positions aligned
    np.testing.assert_array_equal(sub.targets, expected_targets(TRAIN)[[4, 1]])
    np.testing.assert_array_equal(sub.index, [4, 1])
    # decoded once: the cache is beside the data, and a second load reads it
    caches = sorted((voc_tree / "VOCdevkit" / "VOC2012" / ".labelrep-cache").glob("voc-*.npz"))
    assert len(caches) == 2
    again = labelrep.load_dataset("voc2012", voc_tree, image_size=16)
    np.testing.assert_array_equal(again.train.images, data.train.images)


def test_voc_missing_or_malformed_files_say_what_is_expected(voc_tree, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"ImageSets/Main/<class>_\{train,val\}.txt.*JPEGImages"):
        labelrep.load_dataset("voc2012", tmp_path / "empty")
    main = voc_tree / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    (main / "sofa_val.txt").unlink()
    with pytest.raises(UserError, match="sofa_val.txt is missing"):
        labelrep.load_dataset("voc2012", voc_tree, image_size=16)
    (main / "sofa_val.txt").write_text("2008_000101 2\n")
    with pytest.raises(UserError, match=r"sofa_val.txt:1 should read"):
        labelrep.load_dataset("voc2012", voc_tree, image_size=16)
    with pytest.raises(UserError, match="share 6 images"):
        labelrep.load_dataset("voc2012", voc_tree, image_size=16, test_split="train", train_split="train")


def test_voc_download_is_checked_by_md5(http_folder, tmp_path, monkeypatch):
    www, url = http_folder
    write_voc_tree(tmp_path / "src")
    archive = www / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src" / "VOCdevkit", arcname="VOCdevkit")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(download.RESOURCES, archive.name, (f"{url}/{archive.name}", f"md5:{md5}"))
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="pass --download"):
        labelrep.load_dataset("voc2012", tmp_path / "data", download=False)
    data = labelrep.load_dataset("voc2012", tmp_path / "data", download=True, image_size=16)
    np.testing.assert_array_equal(data.test.targets, expected_targets(VAL))
    monkeypatch.setitem(download.RESOURCES, archive.name, (f"{url}/{archive.name}", "md5:" + "0" * 32))
    with pytest.raises(UserError, match="checksum"):
        labelrep.load_dataset("voc2012", tmp_path / "other", download=True)


def test_mosaic_tiles_match_their_multihot_targets(cifar_tiny):
    cifar = labelrep.load_dataset("cifar10", cifar_tiny)
    images, flags = draw_mosaics(cifar.train, 10, 30, np.random.default_rng(3), empty=0.25, difficult=0.2)
    seen_difficult = False
    for mosaic, flag in zip(images, flags):
        present = set()
        for t in range(4):
            r, q = divmod(t, 2)
            tile = mosaic[:, r * TILE:(r + 1) * TILE, q * TILE:(q + 1) * TILE]
            hit = np.flatnonzero((cifar.train.images == tile).all(axis=(1, 2, 3)))
            if len(hit):
                present.add(int(cifar.train.labels[hit[0]]))
            else:  # empty (grey) or a half-size difficult tile with a grey border
                assert (tile[:, :TILE // 4] == GREY).all()
        assert set(np.flatnonzero(flag == 1)) == present
        seen_difficult |= bool((flag == 0).any())
    assert seen_difficult


def test_mosaic_source_goes_through_the_voc_loader(cifar_tiny):
    a = labelrep.load_dataset("mosaic", cifar_tiny, train_size=40, test_size=12, seed=5)
    b = labelrep.load_dataset("mosaic", cifar_tiny, train_size=40, test_size=12, seed=5)
    assert a.multi_label and a.classes == labelrep.load_dataset("cifar10", cifar_tiny).classes
    assert a.train.images.shape == (40, 3, 64, 64) and a.test.targets.shape == (12, 10)
    np.testing.assert_array_equal(a.train.targets, b.train.targets)
    assert set(np.unique(a.train.targets)) <= {0.0, 1.0} and a.train.targets.sum(1).max() <= 4
    cifar = labelrep.load_dataset("cifar10", cifar_tiny)
    rng = np.random.default_rng(5)
    drawn, flags = draw_mosaics(cifar.train, 10, 40, rng, 0.25, 0.0)
    np.testing.assert_array_equal(a.train.targets, (flags == 1).astype(np.float32))
    assert np.abs(a.train.images.astype(int) - drawn).mean() < 4  # JPEG quality 95
    other = labelrep.load_dataset("mosaic", cifar_tiny, train_size=40, test_size=12, seed=6)
    assert not np.array_equal(other.train.targets, a.train.targets)
