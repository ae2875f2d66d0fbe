"""On-disk cache of generated label tables, keyed by the parameters that made them.

Text-to-speech and text encoders are slow and need optional packages; a table they made is
saved as ``<cache_dir>/<kind>-<hash of the parameters>.npy`` and read back on the next call,
so they run once. The folder is ``cache_dir`` if given, else ``$LABELREP_CACHE_DIR``, else
``~/.cache/labelrep/labels``. Writes go to a temporary name and are renamed (no half files).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import atomic_path

# Bump when a generator changes what it produces, so old tables are not reused.
# 2: the speech mel pipeline runs in float64 (float32 tables varied with the thread count).
CACHE_VERSION = 2


def default_cache_dir() -> Path:
    env = os.environ.get("LABELREP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "labelrep" / "labels"


def cache_key(kind: str, params: dict) -> str:
    text = json.dumps({"kind": kind, "version": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cache_path(kind: str, params: dict, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"{cache_key(kind, params)}.npy"


def cached_table(kind: str, params: dict, build: Callable[[], np.ndarray],
                 cache_dir: str | Path | None = None, use_cache: bool = True) -> np.ndarray:
    """``build()``'s array, from the cache when the same ``kind`` and ``params`` made it before."""
    path = cache_path(kind, params, cache_dir)
    if use_cache and path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a damaged file: rebuild it
            pass
    table = np.asarray(build(), dtype=np.float32)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                np.save(tmp, table)
        except OSError:  # an unwritable cache only costs time, never the result
            pass
    return table
