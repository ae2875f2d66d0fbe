"""Optimisers by name, with parameter groups: the head at its own learning rate, and optionally no
weight decay on biases and normalisation layers (fine-tuning and learned labels need no new loop)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

OPTIMIZERS = ("sgd", "adamw")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, head_lr_mult: float = 1.0,
                     no_decay_bias_norm: bool = False) -> list[dict]:
    """Groups of ``(head or body) x (decayed or not)``; each group carries its own ``lr``.

    The head is ``model.head`` (weight *and* bias); a model without one is all body.
    """
    head = getattr(model, "head", None)
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    no_decay: set[int] = set()
    if no_decay_bias_norm:
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if isinstance(module, _NORMS) or name.endswith("bias") or p.ndim <= 1:
                    no_decay.add(id(p))
    groups: dict[tuple[bool, bool], list] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in head_ids, id(p) in no_decay), []).append(p)
    return [{"params": params, "lr": lr * (head_lr_mult if is_head else 1.0),
             "weight_decay": 0.0 if skip_decay else weight_decay, "name": ("head" if is_head else "body")
             + ("/no_decay" if skip_decay else "")}
            for (is_head, skip_decay), params in sorted(groups.items())]


def build_optimizer(model: nn.Module, o: dict) -> torch.optim.Optimizer:
    name = o.get("name", "sgd")
    if name not in OPTIMIZERS:
        raise UserError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    mult = o.get("head_lr_mult", 1.0)
    if not (isinstance(mult, (int, float)) and mult > 0):
        raise UserError(f"optim.head_lr_mult must be a positive number, got {mult!r}")
    plain = mult == 1.0 and not o.get("no_decay_bias_norm", False)
    # One group for the plain case keeps the optimiser state (and resumed runs) as they always were.
    params = model.parameters() if plain else parameter_groups(model, o["lr"], o["weight_decay"], mult,
                                                               o.get("no_decay_bias_norm", False))
    if name == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],
                               nesterov=o["nesterov"] and o["momentum"] > 0, weight_decay=o["weight_decay"])
    betas = o.get("betas", [0.9, 0.999])
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(0 <= b < 1 for b in betas)):
        raise UserError(f"optim.betas must be two numbers in [0, 1), got {betas!r}")
    return torch.optim.AdamW(params, lr=o["lr"], betas=tuple(betas), weight_decay=o["weight_decay"])
