"""Data: sources -> subsets -> device-resident batches."""
from .loader import DeviceLoader, Normalize
from .sources import DATASETS, ImageData, Split, image_folder, load_dataset
from . import cifar10h as _cifar10h  # noqa: F401  (registers cifar10h)
from . import voc as _voc, mosaic as _mosaic  # noqa: F401  (register voc2012, mosaic)
from . import svhn as _svhn  # noqa: F401  (registers the 'svhn' source)
from .subsets import class_balanced_indices, random_indices, validation_split


def list_datasets() -> dict[str, str]:
    return DATASETS.describe()


__all__ = ["DATASETS", "DeviceLoader", "ImageData", "Normalize", "Split", "class_balanced_indices",
           "image_folder", "list_datasets", "load_dataset", "random_indices", "validation_split"]
