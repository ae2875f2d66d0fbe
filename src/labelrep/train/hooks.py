"""Callbacks into training: progress display, and evaluations that watch a run while it trains.

The library never prints; the CLI's hooks do. An evaluation's *watch* part is a ``Hooks`` too
(feature snapshots at fractions of training, a monitor subset each epoch): it sees the model being
trained and the run folder through ``TrainState``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch


@dataclass
class TrainState:
    """What a hook may look at: the run's parts, where it writes, and how long it trains."""

    parts: "RunParts"  # noqa: F821  (train.setup; typed loosely to keep this module import-light)
    out_dir: Path | None
    epochs: int
    steps_per_epoch: int
    total_steps: int
    first_epoch: int
    model: torch.nn.Module       # the network being trained
    eval_model: torch.nn.Module  # the network the run tests (the EMA copy with train.ema)


class Hooks:
    """Override what you need; every method is a no-op."""

    def on_start(self, state: TrainState) -> None: ...
    def on_step(self, epoch: int, step: int) -> None: ...
    def on_epoch(self, record: dict) -> None: ...
    def on_end(self, summary: dict) -> None: ...


class HookList(Hooks):
    """Several hooks called in order, so the loop calls one object."""

    def __init__(self, hooks: Iterable[Hooks]):
        self.hooks = [h for h in hooks if h is not None]

    def on_start(self, state: TrainState) -> None:
        for h in self.hooks:
            h.on_start(state)

    def on_step(self, epoch: int, step: int) -> None:
        for h in self.hooks:
            h.on_step(epoch, step)

    def on_epoch(self, record: dict) -> None:
        for h in self.hooks:
            h.on_epoch(record)

    def on_end(self, summary: dict) -> None:
        for h in self.hooks:
            h.on_end(summary)


def as_hooks(hooks: Hooks | Iterable[Hooks] | None) -> Hooks:
    if hooks is None:
        return Hooks()
    if hasattr(hooks, "on_step"):  # one hooks object (a subclass, or anything with the four methods)
        return hooks
    return HookList(hooks)
