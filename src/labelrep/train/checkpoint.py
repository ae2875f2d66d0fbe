"""Checkpoints: written atomically (a killed run never leaves half a file), loaded weights-only."""
from __future__ import annotations

from pathlib import Path

import torch

from ..files import atomic_path


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)
