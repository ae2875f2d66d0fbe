"""Device-resident batches, after airbench: the split lives on the device as uint8 once; random
crop (with padding), horizontal flip, normalisation and channels-last happen in batch there."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F


class Normalize:
    """uint8 ``[B, C, H, W]`` -> float, ``(x / 255 - mean) / std`` as one multiply-add."""

    def __init__(self, mean, std, device: torch.device | str = "cpu", channels_last: bool = True):
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, x.float(), self.scale)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] (the attack's pixel space) -> normalised."""
        x = (x * 255.0) * self.scale + self.shift
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def random_crop(padded: torch.Tensor, size: int, generator: torch.Generator | None,
                index: torch.Tensor | None = None) -> torch.Tensor:
    """One random ``size x size`` window per image of an already padded split (the images at ``index``,
    default all), by one indexing of the split's window view: no index tensor as large as the batch,
    and no copy of the padded images first."""
    n = padded.shape[0] if index is None else len(index)
    hp, wp = padded.shape[-2:]
    dev = padded.device
    dy = torch.randint(0, hp - size + 1, (n,), generator=generator, device="cpu").to(dev)
    dx = torch.randint(0, wp - size + 1, (n,), generator=generator, device="cpu").to(dev)
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # [N, C, hp-size+1, wp-size+1, size, size], a view
    rows = torch.arange(n, device=dev) if index is None else index
    return windows[rows, :, dy, dx]


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


class DeviceLoader:
    """Batches of ``(normalised images, labels, indices)`` from a uint8 split held on ``device``.

    Augmentation draws come from ``generator`` (on the CPU, so runs repeat across devices).
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, batch_size: int,
                 normalize: Normalize, device: torch.device | str = "cpu", shuffle: bool = False,
                 drop_last: bool = False, crop_padding: int = 0, flip: bool = False):
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
        self.size = self.images.shape[-1]
        self.crop_padding = crop_padding
        if crop_padding > 0:  # pad once, crop per batch
            self.padded = F.pad(self.images, (crop_padding,) * 4)
        self.batch_size, self.normalize, self.device = batch_size, normalize, torch.device(device)
        self.shuffle, self.drop_last, self.flip = shuffle, drop_last, flip
        self.generator: torch.Generator | None = None

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_generator(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device="cpu").to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            if self.crop_padding > 0:
                x = random_crop(self.padded, self.size, self.generator, idx)
            else:
                x = self.images[idx]
            if self.flip:
                x = random_flip(x, self.generator)
            yield self.normalize(x), self.labels[idx], idx
