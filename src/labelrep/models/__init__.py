"""Encoders for small images and the classifier that joins an encoder to a label space's head."""
from __future__ import annotations

from torch import nn

from .classifier import Classifier
from .registry import ENCODERS
from . import fastnet as _fastnet, resnet as _resnet, vgg as _vgg  # noqa: F401  (register encoders)
from . import bc as _bc  # noqa: F401  (convnet11, shake_shake26_2x32d/2x96d)
from . import torchvision_backbones as _tv  # noqa: F401  (resnet18, resnet50, mobilenet_v2)


def create_encoder(name: str, **kwargs) -> nn.Module:
    """Build a registered encoder (``resnet20``, ``vgg19_bn``, ``fastnet`` ...); it has ``num_features``.

    ``in_chans`` and ``image_size`` are passed to every encoder that takes them.
    """
    return ENCODERS.create(name, **kwargs)


def list_encoders() -> dict[str, str]:
    return ENCODERS.describe()


def create_model(encoder_name: str, label_space, in_chans: int, image_size: int, **encoder_options) -> Classifier:
    encoder = create_encoder(encoder_name, in_chans=in_chans, image_size=image_size, **encoder_options)
    return Classifier(encoder, label_space.head(encoder.num_features))


__all__ = ["Classifier", "ENCODERS", "create_encoder", "create_model", "list_encoders"]
