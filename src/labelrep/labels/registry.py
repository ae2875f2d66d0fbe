from __future__ import annotations

from ..registry import Registry

LABEL_SPACES: Registry = Registry("label space")
