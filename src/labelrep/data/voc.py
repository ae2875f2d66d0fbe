"""Pascal VOC classification in the devkit layout: multi-hot targets with the "difficult" mask.

```
<root>/ImageSets/Main/<class>_train.txt   lines "<image id> <flag>": 1 present, -1 absent, 0 difficult
<root>/ImageSets/Main/<class>_val.txt     (and _trainval.txt)
<root>/JPEGImages/<image id>.jpg
```
``<root>`` may also be ``VOCdevkit/VOC2012`` below the folder given. Targets follow the class order of
the files (the 20 VOC classes sorted alphabetically); a difficult entry is NaN: left out of that class's
loss and average precision. Images are resized to ``image_size`` squared (stretched, so nothing at a
border is cut off) and cached once as uint8 arrays beside the data, like image folders.
VOC 2012's test labels are not public: the source's ``test`` split is VOC ``val``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_path
from .download import fetch
from .sources import DATASETS, ImageData, Split, _cache_path, decode_images, default_data_dir

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
VOC2012_ARCHIVE = "VOCtrainval_11-May-2012.tar"
NO_CLASS = -1  # Split.labels of a multi-label source: no image has one class
FLAGS = {"1": 1.0, "-1": 0.0, "0": np.nan}
LAYOUT = ("ImageSets/Main/<class>_{train,val}.txt (lines '<image id> 1|-1|0') and JPEGImages/<image id>.jpg")


def find_voc_root(root: Path) -> Path | None:
    for candidate in (root, root / "VOCdevkit" / "VOC2012", root / "VOC2012"):
        if (candidate / "ImageSets" / "Main").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    return None


def list_classes(voc_root: Path, split: str) -> list[str]:
    """Class names with a ``<class>_<split>.txt`` file, sorted (VOC's order)."""
    suffix = f"_{split}.txt"
    return sorted(f.name[: -len(suffix)] for f in (voc_root / "ImageSets" / "Main").glob(f"*{suffix}"))


def read_image_set(voc_root: Path, split: str, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """Image ids of one split and their targets, float32 ``[N, C]``: 1, 0, or NaN for difficult."""
    ids: list[str] | None = None
    columns = []
    for c in classes:
        path = voc_root / "ImageSets" / "Main" / f"{c}_{split}.txt"
        if not path.is_file():
            raise UserError(f"{path} is missing; a VOC folder holds {LAYOUT}")
        names, flags = [], []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in FLAGS:
                raise UserError(f"{path}:{number} should read '<image id> 1|-1|0', got {line.strip()!r}")
            names.append(fields[0])
            flags.append(FLAGS[fields[1]])
        if ids is None:
            ids = names
        elif names != ids:
            raise UserError(f"{path} lists other images than {classes[0]}_{split}.txt; every class file of "
                            "a split lists the same images in the same order")
        columns.append(flags)
    if not ids:
        raise UserError(f"{voc_root}/ImageSets/Main/*_{split}.txt list no images")
    return ids, np.asarray(columns, dtype=np.float32).T.copy()


def _load_voc_split(voc_root: Path, split: str, classes: list[str], size: int) -> Split:
    ids, targets = read_image_set(voc_root, split, classes)
    files = [voc_root / "JPEGImages" / f"{i}.jpg" for i in ids]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{len(missing)} images of {split} are missing, e.g. {missing[0]}; a VOC folder holds {LAYOUT}")
    stats = hashlib.sha1(f"voc {size} {split}".encode())
    for i in ids:
        stats.update(i.encode())
    for folder in ("JPEGImages", "ImageSets/Main"):
        stats.update(str(os.stat(voc_root / folder).st_mtime_ns).encode())
    cache = _cache_path(voc_root, f"voc-{split}", stats.hexdigest()[:16])
    if cache.is_file():
        with np.load(cache) as z:
            images = z["images"]
    else:
        images = decode_images(files, size, fit="stretch")
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            np.savez(tmp, images=images)
    labels = np.full(len(ids), NO_CLASS, dtype=np.int64)
    return Split(images, labels, np.arange(len(ids)), targets)


def voc_folder(root: str | Path, image_size: int = 224, train_split: str = "train", test_split: str = "val",
               classes: list[str] | None = None, name: str | None = None) -> ImageData:
    """A VOC-layout folder as multi-label ``ImageData``; ``classes`` default: those the files name."""
    root = Path(root)
    voc_root = find_voc_root(root)
    if voc_root is None:
        raise UserError(f"{root} is not a VOC folder: expected {root}/{LAYOUT} "
                        "(or the same under VOCdevkit/VOC2012)")
    if not isinstance(image_size, int) or image_size < 8:
        raise UserError(f"VOC image_size must be a whole number of pixels >= 8, got {image_size!r}")
    classes = list(classes) if classes is not None else list_classes(voc_root, train_split)
    if not classes:
        raise UserError(f"{voc_root}/ImageSets/Main has no <class>_{train_split}.txt files; a VOC folder holds {LAYOUT}")
    train_ids, _ = read_image_set(voc_root, train_split, classes[:1])
    test_ids, _ = read_image_set(voc_root, test_split, classes[:1])
    shared = set(train_ids) & set(test_ids)
    if shared:
        raise UserError(f"VOC splits {train_split!r} and {test_split!r} share {len(shared)} images "
                        f"(e.g. {min(shared)}); test on a split the training split does not hold")
    train = _load_voc_split(voc_root, train_split, classes, image_size)
    test = _load_voc_split(voc_root, test_split, classes, image_size)
    # Random crops with small padding and flips, as for the image folders (VOC labels are flip-invariant).
    return ImageData(name or voc_root.name, classes, train, test, {"crop_padding": max(1, image_size // 16), "flip": True},
                     multi_label=True)


@DATASETS.register("voc2012", "Pascal VOC 2012 classification: 20 classes, multi-hot with difficult masked; "
                              "train = VOC train, test = VOC val")
def voc2012(data_dir: str | Path | None = None, download: bool = False, image_size: int = 224,
            train_split: str = "train", test_split: str = "val") -> ImageData:
    root = Path(data_dir) if data_dir else default_data_dir()
    if find_voc_root(root) is None:
        if not download:
            raise UserError(f"Pascal VOC 2012 not found in {root}: expected {LAYOUT} there or under "
                            f"VOCdevkit/VOC2012; pass --download to fetch {VOC2012_ARCHIVE} (2 GB, checked by md5) "
                            "or --data-dir pointing at the folder that holds it")
        fetch(VOC2012_ARCHIVE, root, extract=True)
    return voc_folder(root, image_size, train_split, test_split, VOC_CLASSES, name="voc2012")
