"""Downloads with checksums (pooch), used only when the user allows it (``--download``)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError

# name -> (url, known hash in pooch's "algo:hex" form)
RESOURCES: dict[str, tuple[str, str]] = {
    "cifar-10-python.tar.gz": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "md5:c58f30108f718f92721af3b95e74349a"),
    "cifar-100-python.tar.gz": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "md5:eb9058c3a382ffc7106e4002c42a8d85"),
    "train-images-idx3-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz", "md5:d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "md5:9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "md5:ec29112dd5afa0611ce80d1b7f02629c"),
    # Pascal VOC 2012 train + val (the devkit layout under VOCdevkit/VOC2012), the published md5
    "VOCtrainval_11-May-2012.tar": (
        "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "md5:6cd6e144f989b92b3379bac3b3de84fd"),
}


def fetch(name: str, directory: str | Path, extract: bool = False) -> Path:
    """Download ``name`` into ``directory`` unless a copy with the right checksum is there.

    With ``extract`` a tar archive is unpacked beside it. A checksum mismatch is a UserError.
    """
    import pooch

    url, known_hash = RESOURCES[name]
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = pooch.retrieve(url, known_hash=known_hash, fname=name, path=directory, progressbar=False)
    except ValueError as err:  # pooch raises ValueError on a hash mismatch
        raise UserError(f"the download of {name} failed its checksum ({err}); delete it and try again") from None
    except OSError as err:
        raise UserError(f"could not download {name} from {url} ({err}); fetch it by hand into {directory}") from None
    if extract:
        import tarfile

        with tarfile.open(path) as archive:
            archive.extractall(directory, filter="data")
    return Path(path)
