"""An offline multi-label benchmark: 2x2 mosaics of CIFAR-10 images, written as a VOC-layout tree.

Each of the four tiles of a mosaic (32x32, so 64x64 mosaics; ``tile: 16`` or ``8`` shrinks the CIFAR-10
images by block means for a cheaper benchmark) is a random CIFAR-10 image of a random class, or empty
(mid-grey) with probability ``empty``; a mosaic's multi-hot target marks the classes of its tiles.
With ``difficult`` > 0 that fraction of tiles is drawn at half size (centred in a grey tile) and its
class is flagged difficult (0 in the VOC files, so masked) unless another tile shows it at full size.
Training mosaics use CIFAR-10 training images, test mosaics its test images.
The tree is written once (JPEG quality 95) and read back by the VOC loader, so the benchmark goes
through exactly the code path of Pascal VOC.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import UserError
from .sources import DATASETS, ImageData, Split, _cache_path, cifar10, default_data_dir
from .voc import voc_folder

VERSION = 1  # bump when the mosaics drawn for the same options change
TILE = 32
TILES = (32, 16, 8)
GREY = 128


def shrink(images: np.ndarray, factor: int) -> np.ndarray:
    """uint8 ``[..., 3, H, W]`` -> ``[..., 3, H / factor, W / factor]`` by block means."""
    if factor == 1:
        return images
    *lead, c, h, w = images.shape
    blocks = images.reshape(*lead, c, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1)).round().astype(np.uint8)


def draw_mosaics(split: Split, num_classes: int, count: int, rng: np.random.Generator, empty: float,
                 difficult: float, tile: int = TILE) -> tuple[np.ndarray, np.ndarray]:
    """``count`` mosaics uint8 ``[count, 3, 2 tile, 2 tile]`` and their VOC flags ``[count, C]`` (1, -1, 0)."""
    members = [np.flatnonzero(split.labels == c) for c in range(num_classes)]
    if any(len(m) == 0 for m in members):
        raise UserError("mosaics need CIFAR-10 images of every class")
    side = split.images.shape[-1]
    images = np.full((count, 3, 2 * tile, 2 * tile), GREY, dtype=np.uint8)
    full = np.zeros((count, num_classes), dtype=bool)
    small = np.zeros((count, num_classes), dtype=bool)
    for i in range(count):
        for t in range(4):
            if rng.random() < empty:
                continue
            c = int(rng.integers(num_classes))
            picture = split.images[rng.choice(members[c])]
            r, q = divmod(t, 2)
            window = images[i, :, r * tile:(r + 1) * tile, q * tile:(q + 1) * tile]
            if rng.random() < difficult:
                window[:, tile // 4:tile // 4 + tile // 2, tile // 4:tile // 4 + tile // 2] = \
                    shrink(picture, 2 * side // tile)
                small[i, c] = True
            else:
                window[:] = shrink(picture, side // tile)
                full[i, c] = True
    flags = np.where(full, 1, np.where(small, 0, -1))
    return images, flags


def write_voc_tree(root: Path, classes: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Images as ``JPEGImages/<split>_<i>.jpg`` and one ``ImageSets/Main/<class>_<split>.txt`` per class."""
    from PIL import Image

    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split, (images, flags) in splits.items():
        ids = [f"{split}_{i:06d}" for i in range(len(images))]
        for name, image in zip(ids, images):
            Image.fromarray(image.transpose(1, 2, 0)).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        for c, cls in enumerate(classes):
            lines = "".join(f"{name} {int(flag):2d}\n" for name, flag in zip(ids, flags[:, c]))
            (root / "ImageSets" / "Main" / f"{cls}_{split}.txt").write_text(lines)


@DATASETS.register("mosaic", "2x2 mosaics of CIFAR-10 images (64x64, multi-hot, VOC layout); --data-dir: CIFAR-10")
def mosaic(data_dir: str | Path | None = None, download: bool = False, train_size: int = 5000,
           test_size: int = 2000, seed: int = 0, empty: float = 0.25, difficult: float = 0.0,
           tile: int = TILE) -> ImageData:
    for key, value in (("train_size", train_size), ("test_size", test_size)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"mosaic {key} must be a whole number >= 1, got {value!r}")
    for key, value in (("empty", empty), ("difficult", difficult)):
        if not 0.0 <= float(value) < 1.0:
            raise UserError(f"mosaic {key} must lie in [0, 1), got {value!r}")
    if tile not in TILES:
        raise UserError(f"mosaic tile must be one of {', '.join(map(str, TILES))} pixels, got {tile!r}")
    source = cifar10(data_dir, download)
    root = Path(data_dir) if data_dir else default_data_dir()
    options = {"version": VERSION, "train_size": train_size, "test_size": test_size, "seed": seed,
               "empty": float(empty), "difficult": float(difficult), "tile": tile, "train": len(source.train), "test": len(source.test)}
    key = json.dumps(options, sort_keys=True)
    folder = _cache_path(root, "mosaic", hashlib.sha1(key.encode()).hexdigest()[:16]).with_suffix("")
    if not (folder / "options.json").is_file():
        rng = np.random.default_rng(seed)
        n = len(source.classes)
        splits = {"train": draw_mosaics(source.train, n, train_size, rng, empty, difficult, tile),
                  "val": draw_mosaics(source.test, n, test_size, rng, empty, difficult, tile)}
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            write_voc_tree(tmp, source.classes, splits)
            (tmp / "options.json").write_text(key + "\n")
            try:
                os.rename(tmp, folder)  # atomic; a parallel run that got there first wins
            except OSError:
                if not (folder / "options.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    data = voc_folder(folder, image_size=2 * tile, classes=source.classes, name="mosaic")
    data.augment = {"crop_padding": tile // 8, "flip": True}
    return data
