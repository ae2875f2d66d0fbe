"""The CIFAR architectures of the between-class learning paper (Tokozume et al., CVPR 2018).

- ``convnet11``: the official code's 11-layer ConvNet (mil-tokyo/bc_learning_image,
  ``models/convnet.py``): 8 conv-BN-ReLU layers (64, 64 | 128, 128 | 256 x 4, max pooling after
  each group) and two 1024-unit fully connected layers with dropout 0.5; the third fully
  connected layer is the label space's head.
- ``shake_shake26_2x32d`` / ``shake_shake26_2x96d``: Shake-Shake (Gastaldi 2017), the
  "Shake-Shake-Image" variant of the CIFAR-10 results (a forward and a backward coefficient per
  image): 3 stages of 4 blocks with two residual branches (ReLU-conv-BN-ReLU-conv-BN) each.

Dropout and the shake coefficients draw from torch's global generator, which the loop seeds every
epoch, so an interrupted run resumes with the same draws.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .layers import conv_stack
from .registry import ENCODERS


class ConvNet11(nn.Module):
    """The official 11-layer ConvNet without its last layer; ``num_features`` = 1024."""

    def __init__(self, in_chans: int = 3, image_size: int = 32, dropout: float = 0.5):
        super().__init__()
        side = image_size // 8
        if side < 1:
            raise UserError(f"convnet11 pools three times and needs images of at least 8 pixels, got {image_size}")
        self.features, ch = conv_stack([64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"], in_chans, image_size,
                                       lambda: nn.ReLU(inplace=True))
        self.fc = nn.Sequential(
            nn.Linear(ch * side * side, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.num_features = 1024
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # Chainer's HeNormal: fan-in
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Linear):  # Chainer's Uniform(1/sqrt(fan_in)), zero bias
                bound = m.in_features ** -0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


@ENCODERS.register("convnet11", "the BC paper's 11-layer ConvNet (official code; dropout 0.5 in the FC layers)")
def convnet11(in_chans: int = 3, image_size: int = 32, dropout: float = 0.5) -> ConvNet11:
    return ConvNet11(in_chans=in_chans, image_size=image_size, dropout=dropout)


# --- Shake-Shake ----------------------------------------------------------------------------------

def shake(b1: torch.Tensor, b2: torch.Tensor, training: bool) -> torch.Tensor:
    """``alpha b1 + (1 - alpha) b2`` forward, gradients scaled by an independent ``beta`` backward.

    Coefficients are drawn per image; at evaluation both are 0.5. The detached term carries the
    forward value without a custom autograd function (so ``torch.compile`` traces it).
    """
    if not training:
        return 0.5 * (b1 + b2)
    shape = (b1.shape[0],) + (1,) * (b1.dim() - 1)
    alpha = torch.rand(shape, device=b1.device, dtype=b1.dtype)
    beta = torch.rand(shape, device=b1.device, dtype=b1.dtype)
    return beta * b1 + (1 - beta) * b2 + ((alpha - beta) * (b1 - b2)).detach()


def _branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))


class _ShiftedShortcut(nn.Module):
    """Gastaldi's projection where the shape changes: ReLU, two strided 1x1 convs (one on the
    image shifted by a pixel), each with half the channels, concatenated, then BN."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout - cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        a = x[:, :, ::self.stride, ::self.stride]
        b = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::self.stride, ::self.stride]
        return self.bn(torch.cat([self.conv1(a), self.conv2(b)], dim=1))


class ShakeBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.branch1, self.branch2 = _branch(cin, cout, stride), _branch(cin, cout, stride)
        self.shortcut = nn.Identity() if cin == cout and stride == 1 else _ShiftedShortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + shake(self.branch1(x), self.branch2(x), self.training)


class ShakeShake(nn.Module):
    """Shake-Shake-(6n+2) with two branches of width ``width``, ``2 width``, ``4 width`` per stage."""

    def __init__(self, depth: int = 26, width: int = 32, in_chans: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise UserError(f"a Shake-Shake network needs depth 6n+2 (26, 32...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        blocks, ch = [], 16
        for stage, w in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(ShakeBlock(ch, w, 2 if stage > 0 and i == 0 else 1))
                ch = w
        self.blocks = nn.Sequential(*blocks)
        self.num_features = ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # fb.resnet.torch / Gastaldi: N(0, sqrt(2 / (k*k*out)))
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.blocks(self.stem(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _register_shake(width: int) -> None:
    @ENCODERS.register(f"shake_shake26_2x{width}d", f"Shake-Shake-26 2x{width}d (Shake-Shake-Image), as in the BC paper")
    def factory(in_chans: int = 3, image_size: int = 32) -> ShakeShake:
        return ShakeShake(26, width, in_chans=in_chans)


for _width in (32, 96):
    _register_shake(_width)
