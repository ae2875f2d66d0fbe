"""Learning-rate schedules as a multiplier of the base rate per optimisation step (LambdaLR)."""
from __future__ import annotations

import math

import torch

from ..errors import UserError

SCHEDULES = ("cosine", "step", "onecycle", "constant")


def lr_multiplier(name: str, total_steps: int, warmup_steps: int = 0, milestones=(0.5, 0.75), gamma: float = 0.1):
    if name not in SCHEDULES:
        raise UserError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    total_steps = max(total_steps, 1)
    if name == "onecycle":  # linear up for 25 % of training, then linear down to 0 (airbench-style)
        peak = max(1, int(0.25 * total_steps))
        return lambda s: (s + 1) / peak if s < peak else max(0.0, (total_steps - s) / (total_steps - peak))
    bounds = [int(m * total_steps) for m in milestones]

    def multiplier(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / warmup_steps
        if name == "cosine":
            progress = (s - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if name == "step":
            return gamma ** sum(s >= b for b in bounds)
        return 1.0

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: dict, steps_per_epoch: int, epochs: int,
                    total_steps: int | None = None):
    """The schedule spans ``total_steps`` (default: every step of ``epochs`` epochs)."""
    total = steps_per_epoch * epochs if total_steps is None else total_steps
    warmup = int(round(optim_cfg["warmup_epochs"] * steps_per_epoch))
    fn = lr_multiplier(optim_cfg["schedule"], total, warmup, optim_cfg["milestones"], optim_cfg["gamma"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
