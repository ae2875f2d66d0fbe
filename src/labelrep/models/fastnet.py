"""A fast small ConvNet for quick studies, after airbench: conv-BN-GELU blocks with max pooling."""
from __future__ import annotations

import torch
from torch import nn

from .registry import ENCODERS


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class FastNet(nn.Module):
    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), image_size: int = 32):
        super().__init__()
        layers: list[nn.Module] = _conv_bn(in_chans, widths[0])
        ch, size = widths[0], image_size
        for w in widths:
            layers += _conv_bn(ch, w)
            if size >= 2:  # keep at least a 1x1 map on tiny inputs
                layers.append(nn.MaxPool2d(2))
                size //= 2
            layers += _conv_bn(w, w)
            ch = w
        self.features = nn.Sequential(*layers)
        self.num_features = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return torch.flatten(nn.functional.adaptive_max_pool2d(x, 1), 1)


@ENCODERS.register("fastnet", "fast small ConvNet (airbench-like) for quick studies")
def fastnet(in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), image_size: int = 32) -> FastNet:
    return FastNet(in_chans=in_chans, widths=tuple(widths), image_size=image_size)
