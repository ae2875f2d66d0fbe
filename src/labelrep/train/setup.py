"""Turn a resolved config into the pieces of a run: data, label space, model, loaders."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import DeviceLoader, ImageData, Normalize, Split, load_dataset
from ..data.mixing import prepare_model
from ..data.cifar10n import apply_train_labels
from ..data.subsets import (check_fraction, class_balanced_indices, long_tail_indices, random_indices,
                            validation_split)
from ..errors import UserError
from ..labels import LabelSpace, create_label_space
from ..models import Classifier, create_model


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None


@dataclass
class RunParts:
    config: dict
    data: ImageData
    train: Split
    val: Split | None
    label_space: LabelSpace
    model: Classifier
    normalize: Normalize
    device: torch.device

    def loader(self, split: Split, train: bool = False) -> DeviceLoader:
        if train:
            aug = self.data.augment
            d = self.config["data"]
            return DeviceLoader(split.images, split.labels, self.config["optim"]["batch_size"], self.normalize,
                                self.device, shuffle=True, drop_last=len(split) > self.config["optim"]["batch_size"],
                                crop_padding=aug["crop_padding"] if d["crop_padding"] is None else d["crop_padding"],
                                flip=aug["flip"] if d["flip"] is None else d["flip"])
        return DeviceLoader(split.images, split.labels, self.config["train"]["eval_batch_size"], self.normalize,
                            self.device)


def select_training_images(data: ImageData, data_cfg: dict, seed: int) -> tuple[Split, Split | None]:
    """The validation hold-out comes first (independent of the fraction), then the subset."""
    fraction = check_fraction(data_cfg["fraction"])
    train, val = data.train, None
    if data_cfg["val_size"]:
        tr_idx, val_idx = validation_split(train.labels, data_cfg["val_size"], seed=0)
        train, val = train.take(tr_idx), train.take(val_idx)
    subset_seed = seed if data_cfg["subset_seed"] is None else data_cfg["subset_seed"]
    if fraction < 1.0:
        idx = (class_balanced_indices(train.labels, fraction, subset_seed) if data_cfg["balanced"]
               else random_indices(len(train), fraction, subset_seed))
        train = train.take(idx)
    if data_cfg["imbalance"] is not None:
        train = train.take(long_tail_indices(train.labels, len(data.classes), data_cfg["imbalance"], subset_seed))
    return train, val


def label_context(data: ImageData, train: Split | None = None) -> dict:
    """Facts about the data a label-space factory may name as parameters."""
    context = {"dataset": data.name, "image_size": data.image_size, "multi_label": data.multi_label}
    if train is not None and not data.multi_label:  # class counts of the images this run trains on (class-balanced losses)
        context["train_class_counts"] = class_counts(train.labels, len(data.classes))
    return context


def build_run(config: dict) -> RunParts:
    """Everything a run needs, built from the config; raises UserError on a bad name or missing data."""
    device = pick_device(config["train"]["device"])
    d = config["data"]
    data = load_dataset(d["dataset"], d["data_dir"], d["download"], **d["options"])
    data = apply_train_labels(data, d["train_labels"], d["train_labels_file"], d["data_dir"], d["download"])
    train, val = select_training_images(data, d, config["train"]["seed"])
    label_space = create_label_space(config["label"]["name"], data.classes, context=label_context(data, train),
                                     **config["label"]["options"])
    torch.manual_seed(config["train"]["seed"])
    model = create_model(config["model"]["name"], label_space, data.in_chans, data.image_size,
                         **config["model"]["options"])
    model = prepare_model(model, config["mix"])  # BC+ centres test images too
    model = model.to(device, memory_format=torch.channels_last)
    mean, std = data.mean_std()
    return RunParts(config, data, train, val, label_space, model, Normalize(mean, std, device), device)


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels, minlength=num_classes).tolist()
