"""The conv-BN-activation stack that the plain ConvNets (fastnet, VGG, the BC paper's ConvNet) share."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from torch import nn


def conv_stack(config: Sequence[int | str], in_chans: int, image_size: int,
               act: Callable[[], nn.Module]) -> tuple[nn.Sequential, int]:
    """``(features, out_channels)``: a 3x3 conv (no bias) + BN + ``act()`` for each width in ``config``,
    a 2x2 max pool for each ``"M"``.

    Pools are skipped once the map is down to 1x1, so 8x8 digits and 28x28 MNIST run through
    encoders drawn for 32x32 images.
    """
    pools_left = int(math.log2(max(image_size, 1)))
    layers: list[nn.Module] = []
    ch = in_chans
    for v in config:
        if v == "M":
            if pools_left > 0:
                layers.append(nn.MaxPool2d(2))
                pools_left -= 1
        else:
            layers += [nn.Conv2d(ch, int(v), 3, padding=1, bias=False), nn.BatchNorm2d(int(v)), act()]
            ch = int(v)
    return nn.Sequential(*layers), ch
