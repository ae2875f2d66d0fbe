"""SVHN (Netzer et al. 2011), cropped digits: the ``.mat`` files of the official site.

``train_32x32.mat`` (73,257 images) and ``test_32x32.mat`` (26,032), optionally ``extra_32x32.mat``
(531,131, added to the training set with ``data.options.extra: true``). Each holds ``X`` uint8
``[32, 32, 3, N]`` and ``y`` ``[N, 1]`` with the digit 0 stored as label 10 (here: class 0). Read with
``scipy.io.loadmat`` (MATLAB v5 arrays, no pickle); fetched only with ``--download``, checked
against the md5 sums torchvision's ``SVHN`` class lists.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .download import RESOURCES, fetch
from .sources import DATASETS, ImageData, Split, default_data_dir

URL = "http://ufldl.stanford.edu/housenumbers/"
MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
       "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
       "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7"}
RESOURCES.update({name: (URL + name, f"md5:{md5}") for name, md5 in MD5.items()})
SIZES = {"train_32x32.mat": "182 MB", "test_32x32.mat": "64 MB", "extra_32x32.mat": "1.3 GB"}


def read_mat(path: Path) -> Split:
    """One ``.mat`` file as a Split: images ``[N, 3, 32, 32]``, labels 0-9 (10 -> 0)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path, variable_names=["X", "y"])
        x, y = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, TypeError, MatReadError) as err:
        raise UserError(f"{path} is not a readable SVHN .mat file ({err}); delete it and fetch it again") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8 or y.size != x.shape[3]:
        raise UserError(f"{path} does not hold SVHN's X uint8 [32, 32, 3, N] and y [N, 1] "
                        f"(got X {x.dtype} {list(x.shape)}, y {list(y.shape)})")
    labels = y.reshape(-1).astype(np.int64) % 10  # SVHN stores the digit 0 as 10
    return Split(np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels)


@DATASETS.register("svhn", "SVHN cropped digits (32x32 colour) from the official .mat files; extra: add extra_32x32")
def svhn(data_dir: str | Path | None = None, download: bool = False, extra: bool = False) -> ImageData:
    if not isinstance(extra, bool):
        raise UserError(f"data.options.extra must be true or false, got {extra!r}")
    root = Path(data_dir) if data_dir else default_data_dir()
    names = ["train_32x32.mat", "test_32x32.mat", *(["extra_32x32.mat"] if extra else [])]

    def locate(name: str) -> Path:
        for folder in (root, root / "svhn"):
            if (folder / name).is_file():
                return folder / name
        if not download:
            raise UserError(f"SVHN file {name} not found in {root} or {root / 'svhn'}: pass --download to fetch it "
                            f"({SIZES[name]}, checked by md5) or --data-dir pointing at the folder that holds it")
        return fetch(name, root / "svhn")

    train, test, *more = (read_mat(locate(n)) for n in names)
    if more:
        train = Split(np.concatenate([train.images, more[0].images]), np.concatenate([train.labels, more[0].labels]))
    # Digits: no flips (a flipped 2 is no digit); small shifts only, the neighbours crowd the crop.
    return ImageData("svhn", [str(i) for i in range(10)], train, test, {"crop_padding": 2, "flip": False})
