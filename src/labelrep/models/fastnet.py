"""A fast small ConvNet for quick studies, after airbench: conv-BN-GELU blocks with max pooling."""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_stack
from .registry import ENCODERS


class FastNet(nn.Module):
    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), image_size: int = 32):
        super().__init__()
        # a stem, then per width: conv, pool, conv
        config = [widths[0], *(v for w in widths for v in (w, "M", w))]
        self.features, self.num_features = conv_stack(config, in_chans, image_size, nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return torch.flatten(nn.functional.adaptive_max_pool2d(x, 1), 1)


@ENCODERS.register("fastnet", "fast small ConvNet (airbench-like) for quick studies")
def fastnet(in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), image_size: int = 32) -> FastNet:
    return FastNet(in_chans=in_chans, widths=tuple(widths), image_size=image_size)
