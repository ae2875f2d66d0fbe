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
    # Human labels (never shipped: CC BY-NC 4.0 / CC BY-NC-SA 4.0), from the authors' repositories.
    "CIFAR-10_human.pt": (
        "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/CIFAR-10_human.pt",
        "sha256:873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"),
    "cifar10h-probs.npy": (
        "https://raw.githubusercontent.com/jcpeterson/cifar-10h/master/data/cifar10h-probs.npy",
        "sha256:436ae98620e00073f9d08585ac870573b588853e7af9f54eb1647408114af77d"),
    # Pascal VOC 2012 train + val (the devkit layout under VOCdevkit/VOC2012), the published md5
    "VOCtrainval_11-May-2012.tar": (
        "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "md5:6cd6e144f989b92b3379bac3b3de84fd"),
}


def verified_file(name: str, path: str | Path) -> Path:
    """``path`` if its checksum is the one known for ``name``; else a UserError (checked before any
    parsing, so a foreign pickle is never opened)."""
    import pooch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    algorithm, known = RESOURCES[name][1].split(":", 1)
    actual = pooch.file_hash(str(path), alg=algorithm)
    if actual != known:
        raise UserError(f"{path} is not the published {name} ({algorithm} {actual[:12]}..., expected "
                        f"{known[:12]}...); delete it and fetch it again")
    return path


def locate_or_fetch(name: str, explicit: str | Path | None, folders: list[Path], download: bool,
                    download_dir: Path, what: str) -> Path:
    """A checksum-verified copy of ``name``: the ``explicit`` path, else the first of ``folders`` that
    holds it, else downloaded into ``download_dir`` when allowed; a UserError says how to get it."""
    if explicit is not None:
        return verified_file(name, explicit)
    for folder in folders:
        if (Path(folder) / name).is_file():
            return verified_file(name, Path(folder) / name)
    if not download:
        raise UserError(f"{what} ({name}) not found in {', '.join(map(str, folders))}: pass --download to "
                        f"fetch it (checked by sha256) or give its path")
    return verified_file(name, fetch(name, download_dir))


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
