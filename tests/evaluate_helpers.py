"""Shared by the tests of the evaluation suite: one small digits model, trained once per session."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def digits_result(label: str = "categorical", epochs: int = 4, seed: int = 0):
    from labelrep.train import train

    return train({"data": {"dataset": "digits"}, "label": {"name": label},
                  "train": {"epochs": epochs, "device": "cpu", "seed": seed}})
