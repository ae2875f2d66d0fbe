"""Mixing of images and targets in the batch (between-class learning, mixup...).

A mixer is built with the label space and called like timm's: ``x, target = mixer(x, y)``,
where ``x`` is a normalised, augmented batch and ``target`` a dense target ``[B, *shape]``
made from the label space's table rows, so mixing works for every label space.
A mixer draws its randomness from the CPU generator the loop hands it each epoch
(``set_generator``), so runs repeat and resume exactly.
"""
from __future__ import annotations

from ..registry import Registry

MIXERS: Registry = Registry("mixer")


def create_mixer(name: str | None, label_space, **options):
    """The mixer named in the config's ``mix`` section, or None for plain training."""
    if name is None or name == "none":
        return None
    return MIXERS.create(name, label_space=label_space, **options)
