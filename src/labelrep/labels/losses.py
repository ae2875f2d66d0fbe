"""Losses of categorical label spaces: logits ``[B, C]`` against dense targets ``[B, C]``.

Every loss takes dense rows (one-hot, smoothed, human-soft, mixed), so a per-image target source
works with each of them; for one-hot rows each equals its paper's definition (the tests check).

- ``ce``: soft-target cross-entropy; ``kl``: KL divergence to the target (BC learning's loss);
- ``gce``: generalized cross-entropy, ``sum_c t_c (1 - p_c^q) / q`` (Zhang & Sabuncu 2018);
- ``sce``: symmetric cross-entropy, ``alpha CE + beta RCE`` with ``log 0 := A`` (Wang et al. 2019);
- ``cb_softmax``, ``cb_sigmoid``, ``cb_focal``: class-balanced losses (Cui et al. 2019), weighted by
  the inverse effective number of each class's training images, as in their official code.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..registry import Registry

LOSSES: Registry = Registry("categorical loss")


def kl_divergence(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(output)), summed over classes and averaged over the batch.

    Stable: log-softmax (never log of a softmax that underflowed) and ``xlogy`` (0 log 0 = 0), so
    targets with zeros and extreme logits give a finite loss and finite gradients. It differs from
    soft-target cross-entropy by the targets' entropy only: same gradient, zero at a perfect fit.
    """
    target = target.float()
    return (torch.xlogy(target, target) - target * F.log_softmax(output.float(), dim=1)).sum(dim=1).mean()


def generalized_cross_entropy(output: torch.Tensor, target: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """``mean_i sum_c t_ic (1 - p_ic^q) / q``; one-hot rows give ``(1 - p_y^q) / q``.

    q -> 0 is cross-entropy, q = 1 the mean absolute error (bounded, so noisy labels pull less).
    ``p^q`` is ``exp(q log_softmax)``: no log of an underflowed probability.
    """
    p_q = torch.exp(q * F.log_softmax(output.float(), dim=1))
    return (target.float() * (1.0 - p_q) / q).sum(dim=1).mean()


def symmetric_cross_entropy(output: torch.Tensor, target: torch.Tensor, alpha: float = 0.1, beta: float = 1.0,
                            A: float = -4.0) -> torch.Tensor:
    """``alpha CE(t, p) + beta RCE`` with the reverse term ``RCE = -sum_c p_c log t_c``, ``log t`` clamped
    below at ``A`` (the paper's A = -4; their code clamps t at 1e-4, i.e. A = log 1e-4).

    For one-hot rows RCE = -A (1 - p_y). CIFAR-10 settings of the paper: alpha 0.1, beta 1.0.
    """
    target = target.float()
    log_p = F.log_softmax(output.float(), dim=1)
    ce = -(target * log_p).sum(dim=1)
    log_t = torch.log(target).clamp_min(A)  # log 0 = -inf -> A
    rce = -(log_p.exp() * log_t).sum(dim=1)
    return (alpha * ce + beta * rce).mean()


def class_balanced_weights(counts: Sequence[int], beta: float) -> torch.Tensor:
    """``w_c = (1 - beta) / (1 - beta^n_c)``, rescaled to sum to C (float64).

    beta = 0 weighs every class the same; beta -> 1 weighs by 1 / n_c. A class with no training image
    would get an infinite weight: a UserError.
    """
    counts = torch.as_tensor(list(counts), dtype=torch.float64)
    if not 0.0 <= beta < 1.0:
        raise UserError(f"class-balanced beta must lie in [0, 1), got {beta}")
    if bool((counts <= 0).any()):
        empty = [i for i, n in enumerate(counts.tolist()) if n <= 0]
        raise UserError(f"class-balanced weights need every class in the training split; classes {empty} have "
                        "no image (lower data.imbalance or raise data.fraction)")
    weights = (1.0 - beta) / (1.0 - torch.pow(beta, counts))
    return weights / weights.sum() * len(counts)


def focal_modulator(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(1 - p_t)^gamma`` of the sigmoid focal loss, ``p_t = p`` where t = 1 and ``1 - p`` where t = 0.

    Written as ``exp(-gamma t z + gamma logsigmoid(z))``: the official code's stable form,
    ``exp(-gamma t z - gamma log1p(exp(-z)))``, overflows in ``exp(-z)`` at z = -100 (giving 0 where
    the answer is 1); ``logsigmoid`` never does, and the power of a zero never enters a gradient.
    """
    if gamma == 0.0:
        return torch.ones_like(logits)
    return torch.exp(gamma * (F.logsigmoid(logits) - target * logits))


def _cb_example_weights(target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weight of each example: ``w_y`` for one-hot rows, ``sum_c t_c w_c`` for soft ones."""
    return target @ weights.to(target.device, target.dtype)


def cb_softmax_loss(output, target, weights):
    """``mean_i w_i CE_i`` (their ``softmax_cross_entropy`` with per-example weights)."""
    target = target.float()
    ce = -(target * F.log_softmax(output.float(), dim=1)).sum(dim=1)
    return (_cb_example_weights(target, weights) * ce).mean()


def cb_sigmoid_loss(output, target, weights, gamma: float = 0.0):
    """``sum_ic w_i m_ic BCE(z_ic, t_ic) / B``, m the focal modulator (1 for gamma = 0); their code
    divides by the number of positive labels, which is B for probability rows."""
    target, output = target.float(), output.float()
    bce = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    loss = _cb_example_weights(target, weights)[:, None] * focal_modulator(output, target, gamma) * bce
    return loss.sum() / len(target)


class Loss:
    """A configured loss: ``loss(output, target)``; ``bias_init``: the head's starting bias (None: default)."""

    bias_init: float | None = None

    def __init__(self, fn: Callable, **bound):
        self.fn, self.bound = fn, bound

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(output, target, **self.bound)


@LOSSES.register("ce", "soft-target cross-entropy")
def _ce(num_classes: int, train_class_counts=None) -> Loss:
    # equals the usual cross-entropy for one-hot rows and takes soft, refined or mixed targets unchanged
    return Loss(lambda z, t: F.cross_entropy(z.float(), t.float()))


@LOSSES.register("kl", "KL divergence to the target (BC learning)")
def _kl(num_classes: int, train_class_counts=None) -> Loss:
    return Loss(kl_divergence)


@LOSSES.register("gce", "generalized cross-entropy (Zhang & Sabuncu 2018), option q (0.7)")
def _gce(num_classes: int, train_class_counts=None, q: float = 0.7) -> Loss:
    if not 0.0 < q <= 1.0:
        raise UserError(f"gce q must lie in (0, 1], got {q}")
    return Loss(generalized_cross_entropy, q=float(q))


@LOSSES.register("sce", "symmetric cross-entropy (Wang et al. 2019), options alpha (0.1), beta (1.0), A (-4)")
def _sce(num_classes: int, train_class_counts=None, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0) -> Loss:
    if A >= 0:
        raise UserError(f"sce A stands for log 0 and must be negative, got {A}")
    return Loss(symmetric_cross_entropy, alpha=float(alpha), beta=float(beta), A=float(A))


def _cb_weights(train_class_counts, num_classes: int, beta: float) -> torch.Tensor:
    if train_class_counts is None:
        raise UserError("class-balanced losses need the training split's class counts; this label space was "
                        "built without them (train through labelrep.train or a study)")
    if len(train_class_counts) != num_classes:
        raise UserError(f"{len(train_class_counts)} class counts for {num_classes} classes")
    return class_balanced_weights(train_class_counts, beta).float()


@LOSSES.register("cb_softmax", "class-balanced softmax cross-entropy (Cui et al. 2019), option beta (0.9999)")
def _cb_softmax(num_classes: int, train_class_counts=None, beta: float = 0.9999) -> Loss:
    return Loss(cb_softmax_loss, weights=_cb_weights(train_class_counts, num_classes, beta))


def _sigmoid_head(loss: Loss, num_classes: int) -> Loss:
    # Their sigmoid and focal heads start at bias -log(C - 1): p = 1/C per class at the start, so the
    # C - 1 negatives do not swamp the first steps.
    loss.bias_init = -math.log(num_classes - 1) if num_classes > 1 else 0.0
    return loss


@LOSSES.register("cb_sigmoid", "class-balanced sigmoid cross-entropy (Cui et al. 2019), option beta (0.9999)")
def _cb_sigmoid(num_classes: int, train_class_counts=None, beta: float = 0.9999) -> Loss:
    return _sigmoid_head(Loss(cb_sigmoid_loss, weights=_cb_weights(train_class_counts, num_classes, beta)),
                         num_classes)


@LOSSES.register("cb_focal", "class-balanced sigmoid focal loss (Cui et al. 2019), options beta (0.9999), gamma (1.0)")
def _cb_focal(num_classes: int, train_class_counts=None, beta: float = 0.9999, gamma: float = 1.0) -> Loss:
    if gamma < 0:
        raise UserError(f"focal gamma must be >= 0, got {gamma}")
    return _sigmoid_head(Loss(cb_sigmoid_loss, weights=_cb_weights(train_class_counts, num_classes, beta),
                              gamma=float(gamma)), num_classes)


def create_loss(name: str, num_classes: int, train_class_counts: Sequence[int] | None = None,
                options: dict | None = None) -> Loss:
    """A registered loss with its options; unknown names and options are UserErrors."""
    if name not in LOSSES:
        raise UserError(f"categorical loss must be one of {', '.join(LOSSES.names())}, got {name!r}")
    options = dict(options or {})
    factory = LOSSES.get(name)
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("num_classes", "train_class_counts")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"loss {name!r} got unknown option(s) {', '.join(unknown)}; it accepts: "
                        f"{', '.join(accepted) or 'no options'}")
    return factory(num_classes=num_classes, train_class_counts=train_class_counts, **options)
