from __future__ import annotations

from ..registry import Registry

ENCODERS: Registry = Registry("encoder")
