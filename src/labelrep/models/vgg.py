"""VGG with batch norm for small images (CIFAR-style: 3x3 convs, one small classifier-free output)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_stack
from .registry import ENCODERS

CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, depth: int = 19, in_chans: int = 3, image_size: int = 32):
        super().__init__()
        self.features, self.num_features = conv_stack(CONFIGS[depth], in_chans, image_size,
                                                      lambda: nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def _register(depth: int) -> None:
    @ENCODERS.register(f"vgg{depth}_bn", f"VGG-{depth} with batch norm, CIFAR-style")
    def factory(in_chans: int = 3, image_size: int = 32) -> VGG:
        return VGG(depth, in_chans=in_chans, image_size=image_size)


for _depth in CONFIGS:
    _register(_depth)
