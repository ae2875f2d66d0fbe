"""Shared fixtures: the shared data folder (skipped when absent) and a tiny CIFAR-10 image folder."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_TAR = SHARED_DATA / "cifar10-jpeg.tar.xz"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (development data; absent in a user's clone)")
    return SHARED_DATA


def _extract_cifar_subset(dest: Path, train_per_class: int, test_per_class: int) -> Path:
    """Unpack the first files of each class of the shared CIFAR-10 copy into an image folder."""
    keep = {"train": train_per_class, "test": test_per_class}
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_TAR) as archive:
        for m in archive:  # one streaming pass over the xz archive
            parts = Path(m.name).parts  # cifar10/<split>/<class>/<file>
            if len(parts) == 4 and m.isfile():
                key = (parts[1], parts[2])
                if counts.get(key, 0) < keep[parts[1]]:
                    counts[key] = counts.get(key, 0) + 1
                    archive.extract(m, dest, filter="data")
    return dest / "cifar10"


@pytest.fixture(scope="session")
def cifar_tiny(shared_data, tmp_path_factory) -> Path:
    """A real CIFAR-10 image folder: 50 training and 20 test images per class (no order file)."""
    if not CIFAR_TAR.is_file():
        pytest.skip(f"needs {CIFAR_TAR}")
    return _extract_cifar_subset(tmp_path_factory.mktemp("cifar"), 50, 20)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: tiny runs gain nothing from two, and lose a lot when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
