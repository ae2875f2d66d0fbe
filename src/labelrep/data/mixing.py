"""Mixing of images and targets in the batch (between-class learning, mixup...).

A mixer is built with the label space and called as ``x, target = mixer(x, target, y)``, where
``x`` is a normalised, augmented batch, ``target`` the dense per-sample target ``[B, *shape]`` the
run's target source made (class-table rows, soft, refined or multi-hot rows alike) and ``y`` the class
ids (BC pairs images of different classes), so mixing works for every label space and target source.
A mixer draws its randomness from the CPU generator the loop hands it each epoch
(``set_generator``), so runs repeat and resume exactly.

Between-class learning (Tokozume, Ushiku & Harada, CVPR 2018; official code mil-tokyo/bc_learning_image):

- ``bc``: two images of *different* classes, ``r ~ U(0, 1)`` per example, image ``r x1 + (1 - r) x2``,
  target ``r t1 + (1 - r) t2``;
- ``bc_plus``: images centred (own mean over C x H x W removed), ``g`` = std of each image,
  ``p = 1 / (1 + g1/g2 * (1 - r)/r)``, image ``(p x1 + (1 - p) x2) / sqrt(p^2 + (1 - p)^2)``,
  target still ``r t1 + (1 - r) t2``; the model centres test images too (``prepare_model``);
- ``bc_single``: ``r ~ U(0.5, 1)`` and the target is the class of the larger share;
- ``mixup`` and ``cutmix`` with ``Beta(alpha, alpha)``, for comparison (timm's batch mode).

BC and BC+ are meant to train with the KL divergence to the mixed target: label option
``loss: kl`` of the categorical spaces (same gradient as soft-target cross-entropy); regressed
spaces train with their own loss on the mixed rows and still decode to the nearest class.

Where this differs from the official code: the loader pads raw pixels with 0 before normalising
(the official code pads normalised images, i.e. with the mean colour); BC+ centres the
normalised image over C x H x W, while the official code removes the raw image's mean and then
divides by per-channel statistics of centred images (a per-channel affine map apart, which the
first conv and batch norm absorb).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..registry import Registry

MIXERS: Registry = Registry("mixer")


def create_mixer(name: str | None, label_space, **options):
    """The mixer named in the config's ``mix`` section, or None for plain training."""
    if name is None or name == "none":
        return None
    return MIXERS.create(name, label_space=label_space, **options)


# --- the formulas, as pure functions (pinned by hand-computed tests) -----------------------------

def _per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[B]`` -> ``[B, 1, 1, ...]`` so it scales each example of ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def mix_targets(t1: torch.Tensor, t2: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``r t1 + (1 - r) t2`` per example: the same combination of the two classes' table rows."""
    r = _per_example(r, t1)
    return r * t1 + (1 - r) * t2


def bc_mix(x1: torch.Tensor, x2: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """BC: ``r x1 + (1 - r) x2`` per example."""
    r = _per_example(r, x1)
    return r * x1 + (1 - r) * x2


def center(x: torch.Tensor) -> torch.Tensor:
    """Remove each image's own mean over C x H x W (BC+'s normalisation)."""
    return x - x.mean(dim=tuple(range(1, x.dim())), keepdim=True)


def bc_plus_ratio(r: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """BC+'s image ratio ``p = 1 / (1 + g1/g2 * (1 - r)/r)``, written as ``r g2 / (r g2 + (1 - r) g1)``.

    The two forms agree wherever the first is defined; the second is finite at r = 0 (p = 0),
    r = 1 (p = 1) and for one constant image (g = 0). Where both terms vanish (two constant images,
    or r = 0 with g1 = 0, or r = 1 with g2 = 0) nothing sets a ratio and ``p = r``.
    """
    num = r * g2
    den = num + (1 - r) * g1
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), r)


def bc_plus_mix(x1: torch.Tensor, x2: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """BC+: centre both images, mix with ``p`` (from r and the images' stds) and keep the energy.

    ``g`` is the population std over C x H x W, as ``np.std`` in the official code.
    """
    x1, x2 = center(x1), center(x2)
    g1 = x1.flatten(1).std(dim=1, correction=0)
    g2 = x2.flatten(1).std(dim=1, correction=0)
    p = bc_plus_ratio(r.to(x1.dtype), g1, g2)
    scale = torch.sqrt(p ** 2 + (1 - p) ** 2)  # >= 1/sqrt(2): never zero
    return bc_mix(x1, x2, p) / _per_example(scale, x1)


def different_class_partners(y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """For each example i, an index j of the batch with ``y[j] != y[i]``, uniform over those j.

    ``u`` holds one uniform in [0, 1) per example: the k-th valid partner with ``k = floor(u * count)``
    is found by a cumulative count over the ``[B, B]`` class-difference mask, so the draw is exact
    (never a same-class partner), vectorised, and needs no host sync. An example whose class fills
    the whole batch has no partner and is paired with itself (the caller leaves it unmixed).
    """
    other = y[None, :] != y[:, None]
    count = other.sum(dim=1)
    k = torch.minimum((u.to(y.device) * count).long(), (count - 1).clamp(min=0))
    rank = other.long().cumsum(dim=1)  # rank[i, j]: valid partners among the first j + 1
    partner = (rank > k[:, None]).long().argmax(dim=1)  # the first j whose rank passes k: valid
    return torch.where(count > 0, partner, torch.arange(len(y), device=y.device))


# --- mixers -------------------------------------------------------------------------------------

class Mixer:
    """Base: keeps the label space and the CPU generator every draw comes from."""

    #: the method also centres test images (the model gets ``center`` in front, see ``prepare_model``)
    centers_inputs = False

    def __init__(self, label_space):
        self.label_space = label_space
        self.generator: torch.Generator | None = None

    def set_generator(self, generator: torch.Generator) -> None:
        self.generator = generator

    def _rand(self, n: int, device) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device="cpu").to(device)

    def _beta(self, alpha: float, n: int) -> np.ndarray:
        # torch's Beta sampler takes no generator: seed numpy's from ours, so the draw still repeats
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.generator).item())
        return np.random.default_rng(seed).beta(alpha, alpha, size=n)

    def __call__(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k not in ("label_space", "generator"))
        return f"{type(self).__name__}({opts})"


def _like(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Keep the batch's memory format (the loader hands channels-last batches)."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out


class BetweenClass(Mixer):
    """BC / BC+ / single-label BC: each image mixed with a different-class image of the batch.

    The official code draws both images of a pair at random from the whole training set. Here
    image i of the (shuffled) batch is the first image and its partner a uniformly drawn batch
    member of another class (``different_class_partners``): the same pair distribution, since a
    shuffled batch is a uniform sample, and each training image is the first image once an epoch.
    Draws per batch, in order: the partner uniforms, then r.
    """

    def __init__(self, label_space, plus: bool = False, single_label: bool = False):
        super().__init__(label_space)
        self.plus, self.single_label = bool(plus), bool(single_label)
        self.centers_inputs = self.plus

    def draw(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The partners and ratios of one batch: ``(partner [B], r [B])``; r = 1 where no partner."""
        partner = different_class_partners(y, self._rand(len(y), y.device))
        r = self._rand(len(y), y.device)
        if self.single_label:
            r = 0.5 + 0.5 * r  # U(0.5, 1): the first image holds the larger share
        return partner, torch.where(partner == torch.arange(len(y), device=y.device), torch.ones_like(r), r)

    def __call__(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        partner, r = self.draw(y)
        x2 = x[partner]
        image = bc_plus_mix(x, x2, r) if self.plus else bc_mix(x, x2, r)
        if not self.single_label:
            target = mix_targets(target, target[partner], r)
        return _like(image, x), target


@MIXERS.register("bc")
def bc(label_space) -> BetweenClass:
    """BC learning: r x1 + (1-r) x2 of two different-class images, target mixed with r ~ U(0,1)."""
    return BetweenClass(label_space)


@MIXERS.register("bc_plus")
def bc_plus(label_space) -> BetweenClass:
    """BC+: centred images mixed as waveforms (std-weighted p, energy kept); target mixed with r."""
    return BetweenClass(label_space, plus=True)


@MIXERS.register("bc_single")
def bc_single(label_space, plus: bool = False) -> BetweenClass:
    """Single-label BC: r ~ U(0.5,1) and the target is the class of the larger share (plus: BC+ images)."""
    return BetweenClass(label_space, plus=plus, single_label=True)


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
        raise UserError(f"mix.options.alpha must be a positive number (Beta(alpha, alpha)), got {alpha!r}")
    return float(alpha)


class Mixup(Mixer):
    """mixup (Zhang et al. 2018): ``lam x + (1 - lam) x.flip(0)``, ``lam ~ Beta(alpha, alpha)``.

    As timm: the partner is the reversed (shuffled) batch; ``mode`` ``batch`` draws one lam a
    batch, ``elem`` one per example. Same-class pairs are allowed, as in mixup.
    """

    def __init__(self, label_space, alpha: float = 1.0, mode: str = "batch"):
        super().__init__(label_space)
        if mode not in ("batch", "elem"):
            raise UserError(f"mixup mode must be 'batch' or 'elem', got {mode!r}")
        self.alpha, self.mode = _check_alpha(alpha), mode

    def __call__(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = 1 if self.mode == "batch" else len(y)
        lam = torch.as_tensor(self._beta(self.alpha, n), dtype=torch.float32).expand(len(y)).to(x.device)
        return _like(bc_mix(x, x.flip(0), lam), x), mix_targets(target, target.flip(0), lam)


class CutMix(Mixer):
    """CutMix (Yun et al. 2019): a box of the reversed batch pasted in; lam = the kept area share.

    As timm's batch mode: one ``lam ~ Beta(alpha, alpha)`` and one box a batch (box side
    ``sqrt(1 - lam)`` of the image, centre uniform, clipped), lam corrected to the box's real area.
    """

    def __init__(self, label_space, alpha: float = 1.0):
        super().__init__(label_space)
        self.alpha = _check_alpha(alpha)

    def box(self, height: int, width: int) -> tuple[int, int, int, int, float]:
        """``(y0, y1, x0, x1, lam)`` of one batch."""
        lam = float(self._beta(self.alpha, 1)[0])
        ratio = math.sqrt(1.0 - lam)
        ch, cw = int(height * ratio), int(width * ratio)
        cy = int(torch.randint(0, height, (1,), generator=self.generator).item())
        cx = int(torch.randint(0, width, (1,), generator=self.generator).item())
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
        return y0, y1, x0, x1, 1.0 - (y1 - y0) * (x1 - x0) / (height * width)

    def __call__(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y0, y1, x0, x1, lam = self.box(x.shape[-2], x.shape[-1])
        out = x.clone()
        out[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        return out, mix_targets(target, target.flip(0), torch.full((len(y),), lam, device=target.device))


@MIXERS.register("mixup")
def mixup(label_space, alpha: float = 1.0, mode: str = "batch") -> Mixup:
    """mixup with Beta(alpha, alpha) against the reversed batch (timm-style; mode batch or elem)."""
    return Mixup(label_space, alpha=alpha, mode=mode)


@MIXERS.register("cutmix")
def cutmix(label_space, alpha: float = 1.0) -> CutMix:
    """CutMix with Beta(alpha, alpha): a box of the reversed batch, lam = kept area (timm-style)."""
    return CutMix(label_space, alpha=alpha)


# --- test-time side of a mixing method ------------------------------------------------------------

class CenteredEncoder(nn.Module):
    """An encoder that first centres each image: BC+ trains on centred images and tests on them."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.num_features = encoder.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(center(x))


def prepare_model(model, mix_config: dict):
    """The model as the mixing method wants it at training *and* test time.

    BC+ (the official code normalises every image, test images included, by its own mean) gets
    a centring step in front of the encoder, so evaluation, attacks and features all see centred
    images; every other method leaves the model as it is.
    """
    name = mix_config.get("name")
    if name is None or name == "none":
        return model
    mixer = create_mixer(name, None, **mix_config.get("options", {}))
    if mixer.centers_inputs and not isinstance(model.encoder, CenteredEncoder):
        model.encoder = CenteredEncoder(model.encoder)
    return model
