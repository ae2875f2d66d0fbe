"""Shared fixtures: the shared data folder (skipped when absent) and a tiny CIFAR-10 image folder."""
from __future__ import annotations

import http.server
import os
import tarfile
import threading
from pathlib import Path

import pytest
import torch

# beside the clone (CI: ../shared/data); LABELREP_SHARED_DATA points elsewhere (a git worktree elsewhere)
SHARED_DATA = Path(os.environ.get("LABELREP_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
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


@pytest.fixture(scope="session")
def cifar_order_labels(shared_data) -> dict:
    """Class ids of the shared copy's ``train_order.txt`` and ``test_order.txt`` (line i = image i of the
    original CIFAR-10 split), read from the archive without decoding an image (one pass, ~7 s)."""
    import numpy as np

    if not CIFAR_TAR.is_file():
        pytest.skip(f"needs {CIFAR_TAR}")
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    with tarfile.open(CIFAR_TAR) as archive:
        for m in archive:
            if m.name in ("cifar10/train_order.txt", "cifar10/test_order.txt"):
                text = archive.extractfile(m).read().decode()
                out[m.name.split("/")[1].split("_")[0]] = np.array(
                    [index[Path(line).parent.name] for line in text.split()], dtype=np.int64)
    if len(out) != 2:
        pytest.skip(f"{CIFAR_TAR} has no order files")
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: tiny runs gain nothing from two, and lose a lot when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
