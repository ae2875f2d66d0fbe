"""torchvision's ImageNet encoders (ResNet-18/50, MobileNetV2) with the label space's head.

The ImageNet classifier is removed (ResNet ``fc``; MobileNetV2 keeps its dropout, loses its linear
layer); the label space's head goes on the pooled features. Pretrained weights come only from a local
file the user names (``model.options.weights``): a torchvision state dict such as ``resnet18-f37072fd.pth``
(its ImageNet classifier is left out). Nothing downloads at run time. A file whose name ends in
torchvision's ``-<sha256 prefix>.pth`` is checked against that prefix before it is read; every file is
read with ``torch.load(weights_only=True)`` (tensors only, no code).
``stem: small`` suits 32-64 px images: ResNet's 7x7 stride-2 convolution and max-pool become one 3x3
stride-1 convolution, MobileNetV2's first stride 2 becomes 1.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .registry import ENCODERS

HEAD_KEYS = {"resnet": "fc.", "mobilenet": "classifier."}
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"pretrained weights file {path} does not exist; name a local torchvision state dict "
                        "(e.g. resnet18-f37072fd.pth) with model.options.weights (nothing is downloaded)")
    match = HASH_IN_NAME.search(path.name)
    if match:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if not digest.hexdigest().startswith(match.group(1)):
            raise UserError(f"{path} does not match the sha256 prefix {match.group(1)} in its name; "
                            "the file is damaged or not the one its name says: fetch it again")


def load_pretrained(encoder: nn.Module, weights: str | Path, name: str, head_prefix: str) -> None:
    """Load a local state dict into ``encoder``, without its ImageNet classifier; every other tensor must fit."""
    path = Path(weights).expanduser()
    _check_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (truncated, foreign or a pickle with code)
        raise UserError(f"{path} is not a loadable state dict of tensors ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                 f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} in the file, "
                 f"{tuple(own[wrong[0]].shape)} here)" if wrong else ""]
        raise UserError(f"{path} does not fit {name} with these options: tensors "
                        + ", ".join(p for p in parts if p) + "; use the torchvision weights of this architecture "
                        "with stem=imagenet and 3 input channels")
    encoder.load_state_dict(state)


def _resnet(arch: str, in_chans: int, stem: str) -> nn.Module:
    import torchvision.models as tvm

    net = getattr(tvm, arch)(weights=None)
    net.num_features = net.fc.in_features
    net.fc = nn.Identity()
    if stem == "small":
        net.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_chans != 3:
        net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    return net


def _mobilenet_v2(in_chans: int, stem: str) -> nn.Module:
    import torchvision.models as tvm

    net = tvm.mobilenet_v2(weights=None)
    first = net.features[0][0]
    if in_chans != 3 or stem == "small":
        net.features[0][0] = nn.Conv2d(in_chans, first.out_channels, 3, 1 if stem == "small" else 2, 1, bias=False)
    net.num_features = net.classifier[1].in_features
    net.classifier = nn.Sequential(net.classifier[0])  # keep the dropout before the head
    return net


def _build(name: str, in_chans: int, stem: str, weights: str | None) -> nn.Module:
    if stem not in ("imagenet", "small"):
        raise UserError(f"{name} stem must be 'imagenet' or 'small', got {stem!r}")
    net = _mobilenet_v2(in_chans, stem) if name == "mobilenet_v2" else _resnet(name, in_chans, stem)
    if weights:
        load_pretrained(net, weights, name, HEAD_KEYS["mobilenet" if name == "mobilenet_v2" else "resnet"])
    return net


def _register(name: str, title: str) -> None:
    @ENCODERS.register(name, f"torchvision {title} (ImageNet layout); weights: a local state-dict file")
    def factory(in_chans: int = 3, image_size: int = 224, weights: str | None = None, stem: str = "imagenet") -> nn.Module:
        return _build(name, in_chans, stem, weights)


for _name, _title in (("resnet18", "ResNet-18"), ("resnet50", "ResNet-50"), ("mobilenet_v2", "MobileNetV2")):
    _register(_name, _title)
