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
}


# The published md5 of each file inside the CIFAR archives (as torchvision lists them): a pickle
# runs code when it is loaded, so only these exact files are ever unpickled.
PICKLE_HASHES: dict[str, dict[str, str]] = {
    "cifar-10-batches-py": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar-100-python": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}


def check_pickle(path: str | Path, dataset: str, hashes: dict[str, str] | None = None) -> None:
    """Refuse, before it is unpickled, any file that is not byte for byte a published one."""
    import pooch

    path = Path(path)
    known = (hashes or {}).get(path.name)
    if known is None:
        raise UserError(f"{path} is not one of {dataset}'s published files ({', '.join(hashes or {})}), so it is "
                        "not loaded (a pickle can run code)")
    try:
        actual = pooch.file_hash(str(path), alg="md5")
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror})") from None
    if actual != known:
        raise UserError(f"{path} does not match {dataset}'s published md5 checksum, so it is not loaded (a pickle "
                        "can run code); delete it and fetch the data again with --download")


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
