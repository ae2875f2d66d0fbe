"""L-inf attacks in pixel space, after torchattacks: one class per attack, one call shape.

``attack(model, images, labels) -> adversarial images``, where ``model`` maps float images in
[0, 1] to whatever the network outputs (wrap a classifier with ``PixelModel``), and the attack's
``loss(output, labels)`` says what to climb: cross-entropy on logits by default, the label space's
training loss for the paper's protocol, non-saturating CE, the Carlini-Wagner margin or DLR on
``scores`` for the strong one.

Budgets are in pixel units of [0, 1] images (``eps = 8 / 255``); a budget may also be a
per-channel tensor, which is what the paper's normalised-unit budgets become (``paper_eps``).

``clamp`` says which box the adversarial image is kept in: ``"unit"`` ([0, 1], the default: a
valid image), ``"own"`` (each image's own [min, max] over all its values, what the authors'
batch-1 FGSM did in normalised space) or ``None`` (no box: the authors' iterative attack, whose
clamp is commented out). ``accumulate=True`` makes the iterative attacks step along the running
sum of the gradients, as the authors' loop did by never zeroing ``x.grad``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models.modes import eval_mode
from ..registry import Registry

ATTACKS: Registry = Registry("attack")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The per-channel std most CIFAR-10 code of the paper's era normalised with; the paper's budgets
# (0.05 .. 0.3) were steps in that normalised space.
PAPER_CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def paper_eps(eps: float, std: Sequence[float] = PAPER_CIFAR10_STD) -> torch.Tensor:
    """A budget in normalised units -> the per-channel budget in [0, 1] pixel units (``eps * std``)."""
    return torch.as_tensor([float(eps) * float(s) for s in std], dtype=torch.float32)


def eps_to_255(eps: float | torch.Tensor) -> float:
    """A pixel budget as a number of 8-bit levels (the mean over channels for a per-channel one)."""
    return float(torch.as_tensor(eps, dtype=torch.float64).mean()) * 255.0


class PixelModel(nn.Module):
    """A classifier seen from pixel space: [0, 1] float images -> the network's raw output."""

    def __init__(self, model: nn.Module, normalize):
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.train(model.training)  # a new module starts in training mode; take the wrapped one's

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize.unit(x01))


class ScoresModel(nn.Module):
    """``scores`` of a label space as logits (minus distances for regressed spaces), e.g. for AutoAttack."""

    def __init__(self, model: nn.Module, label_space):
        super().__init__()
        self.model = model
        self.label_space = label_space
        # A new module starts in training mode; take the wrapped model's, or a library that
        # restores "the mode it found" (torchattacks) would switch batch norm to batch statistics.
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.label_space.scores(self.model(x)).float()


class NormalisedModel(nn.Module):
    """A pixel-space model seen from a normalised space ``z = (x - mean) / std`` (the space the
    authors' attacks stepped in, so their scalar budgets and their own-range clamp apply as written)."""

    def __init__(self, pixel_model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = pixel_model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.train(pixel_model.training)

    def to_normalised(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self.mean.to(x01.device)) / self.std.to(x01.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z * self.std.to(z.device) + self.mean.to(z.device))


def cross_entropy(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.float(), labels)


def _others(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``scores`` with the true class's entry at -inf."""
    return scores.masked_fill(F.one_hot(labels, scores.shape[1]).bool(), float("-inf"))


def unsaturated_cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with its per-image saturation factor divided out: ``logsumexp_{j != y} s_j - s_y``.

    Per image, CE = softplus(m) with m this quantity, so d CE / d x = sigmoid(m) d m / d x: the
    same direction, and the same sign step, as exact CE. But sigmoid(m) is exp(-gap), which is 0 in
    float32 once the top score leads by ~104 (minus distances often lead by hundreds), and then
    a CE attack has an exactly zero gradient; this form never underflows.
    """
    scores = scores.float()
    true = scores.gather(1, labels[:, None]).squeeze(1)
    return (torch.logsumexp(_others(scores, labels), dim=1) - true).sum()


def margin(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin: best other score minus the true class's; positive once misclassified.

    Unlike cross-entropy it does not saturate when the softmax is sharp (large score gaps, as
    minus-distances often have), so its gradient does not vanish there.
    """
    scores = scores.float()
    true = scores.gather(1, labels[:, None]).squeeze(1)
    return (_others(scores, labels).amax(1) - true).sum()


def dlr(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's difference-of-logits ratio (AutoAttack's APGD-DLR loss), climbed:
    ``(max_{j != y} s_j - s_y) / (s_(1) - s_(3))``; invariant to shifting and scaling the scores."""
    scores = scores.float()
    if scores.shape[1] < 3:
        return margin(scores, labels)
    top = scores.sort(1, descending=True).values
    true = scores.gather(1, labels[:, None]).squeeze(1)
    return ((_others(scores, labels).amax(1) - true) / (top[:, 0] - top[:, 2] + 1e-12)).sum()


def _budget(eps: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(eps, torch.Tensor):
        return eps.to(like.device, like.dtype).reshape(1, -1, *([1] * (like.dim() - 2)))
    return float(eps)


CLAMPS = ("unit", "own", None)


def clamp_box(adv: torch.Tensor, images: torch.Tensor, clamp: str | None = "unit") -> torch.Tensor:
    """Into the box ``clamp`` names: [0, 1], each image's own [min, max], or none."""
    if clamp == "unit":
        return adv.clamp(0.0, 1.0)
    if clamp == "own":
        flat = images.flatten(1)
        shape = (-1,) + (1,) * (images.dim() - 1)
        return torch.max(torch.min(adv, flat.amax(1).view(shape)), flat.amin(1).view(shape))
    if clamp is None:
        return adv
    raise UserError(f"clamp must be one of unit, own or none, got {clamp!r}")


def project(adv: torch.Tensor, images: torch.Tensor, eps: float | torch.Tensor,
            clamp: str | None = "unit") -> torch.Tensor:
    """Back into the L-inf ball of radius ``eps`` around ``images`` and into the box ``clamp``
    (default the pixel range [0, 1])."""
    eps = _budget(eps, images)
    adv = torch.max(torch.min(adv, images + eps), images - eps)
    return clamp_box(adv, images, clamp)


class Attack:
    """Base: ``loss(output, labels)`` is maximised; ``predict(output)`` gives classes (for restarts).

    The model is put in eval mode for the attack (batch-norm statistics and dropout fixed) and
    given back in the mode it came in.
    """

    name = "attack"

    def __init__(self, eps: float | torch.Tensor, loss: Loss | None = None,
                 predict: Callable[[torch.Tensor], torch.Tensor] | None = None, clamp: str | None = "unit"):
        if clamp not in CLAMPS:
            raise UserError(f"clamp must be one of unit, own or none, got {clamp!r}")
        self.clamp = clamp
        if isinstance(eps, torch.Tensor):
            if bool((eps < 0).any()):
                raise UserError(f"an attack budget must be >= 0, got {eps.tolist()}")
        elif not eps >= 0:
            raise UserError(f"an attack budget must be >= 0, got {eps}")
        self.eps = eps
        self.loss = loss or cross_entropy
        self.predict = predict or (lambda output: output.argmax(1))

    def gradient(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """d loss / d x, fresh every call (the paper's iterative code let ``x.grad`` accumulate
        across steps because it never zeroed it; ``autograd.grad`` returns the step's own gradient)."""
        x = x.detach().requires_grad_(True)
        loss = self.loss(model(x), labels)
        return torch.autograd.grad(loss, x)[0]

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            raise UserError("attacks take float images in [0, 1]; divide uint8 images by 255 first")
        with eval_mode(model), torch.enable_grad():
            adv = self.perturb(model, images.detach().float(), labels)
        return adv.detach()

    def perturb(self, model, images, labels) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={eps_to_255(self.eps):.2f}/255)"


@ATTACKS.register("fgsm", "fast gradient sign method: one step of eps along the gradient's sign")
class FGSM(Attack):
    name = "fgsm"

    def perturb(self, model, images, labels):
        grad = self.gradient(model, images, labels)
        return clamp_box(images + _budget(self.eps, images) * grad.sign(), images, self.clamp)


@ATTACKS.register("bim", "basic iterative method (I-FGSM): steps of eps/steps, projected each step")
class BIM(Attack):
    name = "bim"

    def __init__(self, eps, steps: int = 10, alpha: float | torch.Tensor | None = None, loss: Loss | None = None,
                 predict=None, clamp: str | None = "unit", accumulate: bool = False):
        super().__init__(eps, loss, predict, clamp)
        if steps < 1:
            raise UserError(f"an iterative attack needs at least 1 step, got {steps}")
        self.steps = int(steps)
        self.alpha = eps / steps if alpha is None else alpha
        self.accumulate = bool(accumulate)

    def _iterate(self, model, images, labels, adv):
        alpha = _budget(self.alpha, images)
        total = None
        for _ in range(self.steps):
            grad = self.gradient(model, adv, labels)
            total = grad if total is None or not self.accumulate else total + grad
            adv = project(adv + alpha * total.sign(), images, self.eps, self.clamp)
        return adv

    def perturb(self, model, images, labels):
        return self._iterate(model, images, labels, images.clone())


@ATTACKS.register("pgd", "projected gradient descent from a uniform random start, with restarts")
class PGD(BIM):
    """Madry et al.'s PGD: a uniform random start in the ball, ``steps`` of ``alpha`` (default
    2.5 eps / steps), projection; with ``restarts`` > 1, each image keeps the first restart that
    fools the model (else the last)."""

    name = "pgd"

    def __init__(self, eps, steps: int = 10, alpha=None, restarts: int = 1, random_start: bool = True,
                 loss: Loss | None = None, predict=None, generator: torch.Generator | None = None,
                 clamp: str | None = "unit", accumulate: bool = False):
        super().__init__(eps, steps, alpha=2.5 * eps / steps if alpha is None else alpha, loss=loss, predict=predict,
                         clamp=clamp, accumulate=accumulate)
        if restarts < 1:
            raise UserError(f"restarts must be at least 1, got {restarts}")
        self.restarts, self.random_start, self.generator = int(restarts), random_start, generator

    def _start(self, images: torch.Tensor) -> torch.Tensor:
        if not self.random_start:
            return images.clone()
        noise = torch.rand(images.shape, generator=self.generator, device="cpu").to(images.device)
        return project(images + (2 * noise - 1) * _budget(self.eps, images), images, self.eps, self.clamp)

    def _climb(self, model, images, labels):
        return self._iterate(model, images, labels, self._start(images))

    def perturb(self, model, images, labels):
        if self.restarts == 1:
            return self._climb(model, images, labels)
        best = images.clone()
        todo = torch.arange(len(images), device=images.device)
        for _ in range(self.restarts):
            # only the images no restart has fooled yet are attacked again; a fooled one keeps its first success
            adv = self._climb(model, images[todo], labels[todo])
            best[todo] = adv
            with torch.no_grad():
                fooled = self.predict(model(adv)) != labels[todo]
            todo = todo[~fooled]
            if len(todo) == 0:
                break
        return best


def create_attack(name: str, eps, **options) -> Attack:
    """A registered attack by name (``fgsm``, ``bim``, ``pgd``) with its options."""
    return ATTACKS.create(name, eps=eps, **options)
