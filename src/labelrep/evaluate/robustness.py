"""Accuracy under attack, two protocols side by side, for every label space through ``loss`` and ``scores``.

- **paper** (Chen et al., *Beyond Categorical Label Representations*): the gradient is that of the
  model's training loss (Huber to the class's label for regressed spaces, cross-entropy for
  categorical ones); only images the model gets right are attacked, the rest count as wrong.
- **strong**: the decision itself is attacked: cross-entropy and the Carlini-Wagner margin on
  ``scores`` (minus distances act as logits), PGD with restarts, optionally AutoAttack through
  torchattacks. An image counts as robust under a protocol only if it survives every attack and
  loss of that protocol (the ``worst`` rows).

A label space that holds up under the paper protocol but collapses under the strong one is masking
gradients (its training loss is a poor guide to its decision), not robust: ``masking_gaps`` puts
that difference in one number per eps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..models.modes import eval_mode
from .attacks import ATTACKS, PixelModel, ScoresModel, create_attack, eps_to_255, margin, paper_eps
from .registry import Drawing, register_evaluation

PROTOCOLS: dict[str, tuple[str, ...]] = {"paper": ("train",), "strong": ("ce", "margin")}
DEFAULT_ATTACKS = ("fgsm", "bim", "pgd")
DEFAULT_EPS_255 = (1.0, 2.0, 4.0, 8.0, 16.0)
PAPER_EPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # the budgets of the paper's Figure 3, normalised units


def objective(label_space, loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The quantity an attack climbs, as ``fn(network output, labels)``."""
    if loss == "train":
        return lambda output, labels: label_space.loss(output, label_space.targets(labels))
    if loss == "ce":
        return lambda output, labels: F.cross_entropy(label_space.scores(output).float(), labels)
    if loss == "margin":
        return lambda output, labels: margin(label_space.scores(output), labels)
    raise UserError(f"unknown attack loss {loss!r}; known: train, ce, margin")


def predictor(label_space) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda output: label_space.scores(output).argmax(1)


@torch.no_grad()
def predict_pixels(model, predict, x01: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([predict(model(x01[i:i + batch_size])) for i in range(0, len(x01), batch_size)])


def survivors(model, attack, x01: torch.Tensor, labels: torch.Tensor, correct: torch.Tensor, predict,
              batch_size: int = 250) -> torch.Tensor:
    """Which images are still classified right after ``attack``; only the ``correct`` ones are attacked,
    the others count as wrong without being touched."""
    alive = torch.zeros_like(correct)
    idx = correct.nonzero().squeeze(1)
    for i in range(0, len(idx), batch_size):
        b = idx[i:i + batch_size]
        adv = attack(model, x01[b], labels[b])
        with torch.no_grad():
            alive[b] = predict(model(adv)) == labels[b]
    return alive


def _eps_list(eps: Sequence[float] | None, paper: Sequence[float] | None, std: Sequence[float] | None):
    """[(budget for the attack, eps in /255 for rows, paper eps or None)], ascending."""
    if paper is not None:
        budgets = [(paper_eps(e, std) if std is not None else paper_eps(e), float(e)) for e in paper]
        return [(b, eps_to_255(b), pe) for b, pe in budgets]
    eps = DEFAULT_EPS_255 if eps is None else eps
    for e in eps:
        if not float(e) > 0:
            raise UserError(f"attack budgets must be > 0 (in 1/255 units), got {e}")
    return [(float(e) / 255.0, float(e), None) for e in eps]


def _autoattack(model, label_space, eps: float, version: str, seed: int, num_classes: int):
    try:
        import torchattacks
    except ImportError:
        raise UserError("autoattack needs torchattacks: pip install --no-deps torchattacks") from None
    if isinstance(eps, torch.Tensor):
        raise UserError("autoattack takes one budget for all channels; use eps (1/255 units), not paper_eps")
    scores_model = ScoresModel(model, label_space)
    if version == "apgd":  # the two untargeted APGD runs of AutoAttack (CE and DLR), no FAB / Square
        attacks = [torchattacks.APGD(scores_model, eps=eps, loss="ce", seed=seed),
                   torchattacks.APGD(scores_model, eps=eps, loss="dlr", seed=seed)]
        multi = torchattacks.MultiAttack(attacks)
    elif version == "standard":
        multi = torchattacks.AutoAttack(scores_model, norm="Linf", eps=eps, version="standard",
                                        n_classes=num_classes, seed=seed)
    else:
        raise UserError(f"autoattack must be apgd or standard, got {version!r}")

    def run(_model, images, labels):
        return multi(images, labels)

    return run


def robust_accuracy(model, label_space, normalize, images: torch.Tensor, labels: torch.Tensor, *,
                    protocols: Iterable[str] = ("paper", "strong"),
                    attacks: Iterable[str] | Mapping[str, Iterable[str]] = DEFAULT_ATTACKS,
                    eps: Sequence[float] | None = None, paper: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, steps: int = 10, restarts: int = 1,
                    autoattack: str | None = None, batch_size: int = 250, seed: int = 0) -> list[dict]:
    """Accuracy under attack per protocol, attack, loss and eps, as tidy rows.

    ``images`` are uint8 ``[N, C, H, W]`` (or floats in [0, 1]); ``eps`` in 1/255 units, or
    ``paper`` budgets in normalised units (converted per channel with ``std``). ``attacks`` is one
    list for every protocol or ``{protocol: list}`` (e.g. the paper's FGSM and BIM, PGD for strong).
    """
    protocols = list(protocols)
    for p in protocols:
        if p not in PROTOCOLS:
            raise UserError(f"unknown protocol {p!r}; known: {', '.join(PROTOCOLS)}")
    per_protocol = {p: list(attacks[p] if isinstance(attacks, Mapping) else attacks) for p in protocols}
    for a in (a for names in per_protocol.values() for a in names):
        ATTACKS.get(a)
    device = next(model.parameters()).device
    x01 = (images.float() / 255.0 if images.dtype == torch.uint8 else images.float()).to(device)
    labels = labels.to(device)
    pixel = PixelModel(model, normalize)
    predict = predictor(label_space)
    with eval_mode(model):
        correct = predict_pixels(pixel, predict, x01, batch_size) == labels
        n = len(labels)
        base = {"metric": "adversarial_accuracy", "images": n}
        rows = []
        for p in protocols:
            rows.append({**base, "value": correct.float().mean().item(), "protocol": p, "attack": "none",
                         "loss": "none", "eps": 0.0})
        for budget, e255, pe in _eps_list(eps, paper, std):
            where = {"eps": e255} if pe is None else {"eps": e255, "paper_eps": pe}
            for p in protocols:
                worst = correct.clone()
                for loss in PROTOCOLS[p]:
                    fn = objective(label_space, loss)
                    for a in per_protocol[p]:
                        options = {"loss": fn, "predict": predict}
                        if a in ("bim", "pgd"):
                            options["steps"] = steps
                        if a == "pgd":
                            options.update(restarts=restarts, generator=torch.Generator().manual_seed(seed))
                        alive = survivors(pixel, create_attack(a, budget, **options), x01, labels, correct,
                                          predict, batch_size)
                        worst &= alive
                        rows.append({**base, "value": alive.float().mean().item(), "protocol": p, "attack": a,
                                     "loss": loss, **where})
                if p == "strong" and autoattack:
                    run = _autoattack(pixel, label_space, budget, autoattack, seed, label_space.num_classes)
                    alive = survivors(pixel, run, x01, labels, correct, predict, batch_size)
                    worst &= alive
                    rows.append({**base, "value": alive.float().mean().item(), "protocol": p,
                                 "attack": f"autoattack-{autoattack}", "loss": "ce+dlr", **where})
                rows.append({**base, "value": worst.float().mean().item(), "protocol": p, "attack": "worst",
                             "loss": "any", **where})
    return rows


def evaluation_images(n_total: int, max_images: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, seeded choice of test images (the same for every run of a data set)."""
    if max_images is None or max_images >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:max_images])


# Curves of accuracy against eps, one panel per protocol, attack and loss, each starting at the clean
# accuracy of its protocol; the evaluation's other metrics (masking flags) are notes beside them.
DRAWING = Drawing(x="eps", curves=("adversarial_accuracy",), series=("protocol", "attack", "loss"),
                  baseline={"attack": "none"}, baseline_match=("protocol",), title="Robustness",
                  names={"adversarial_accuracy": "accuracy under attack", "eps": "eps (1/255)"})


@register_evaluation("robustness", "accuracy under FGSM/BIM/PGD per eps, paper and strong protocols",
                     drawing=DRAWING)
def robustness(run, protocols: Sequence[str] = ("paper", "strong"),
               attacks: Sequence[str] | Mapping[str, Sequence[str]] = DEFAULT_ATTACKS,
               eps: Sequence[float] | None = None, paper_eps: Sequence[float] | None = None,
               max_images: int | None = 1000, steps: int = 10, restarts: int = 1, autoattack: str | None = None,
               batch_size: int = 250, seed: int = 0, figure: str | None = None) -> list[dict]:
    """Rows ``{"metric": "adversarial_accuracy", "value", "protocol", "attack", "loss", "eps" (1/255), ...}``.

    ``eps`` in 1/255 units (default 1, 2, 4, 8, 16); ``paper_eps`` instead gives the paper's normalised
    budgets, converted with the run's own per-channel std. ``attacks: [fgsm], protocols: [paper]`` is
    the cheap setting.
    """
    parts = run.parts
    test = parts.data.test
    idx = evaluation_images(len(test), max_images)
    std = parts.data.mean_std()[1].tolist() if paper_eps is not None else None
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images[idx]),
                           torch.as_tensor(test.labels[idx]), protocols=protocols, attacks=attacks, eps=eps,
                           paper=paper_eps, std=std, steps=steps, restarts=restarts, autoattack=autoattack,
                           batch_size=batch_size, seed=seed)
    if figure:
        plot_curves(rows, figure, group=None, title=parts.config["label"]["name"])
    return rows


# --- tables and figures --------------------------------------------------------------------------

def _key(row: dict) -> tuple:
    return (row["protocol"], row["attack"], row["loss"])


def curve_table(rows: Sequence[dict], group: str | None = None) -> tuple[list[str], list[list]]:
    """Headers and rows: one line per (group, protocol, attack, loss), one column per eps."""
    rows = [r for r in rows if r.get("metric") == "adversarial_accuracy"]
    eps = sorted({r["eps"] for r in rows})
    lines: dict[tuple, dict] = {}
    for r in rows:
        if r["attack"] == "none":
            continue
        k = ((r.get(group, "") if group else ""),) + _key(r)
        lines.setdefault(k, {})[r["eps"]] = r["value"]
    clean = {((r.get(group, "") if group else ""), r["protocol"]): r["value"] for r in rows if r["attack"] == "none"}
    headers = ([group] if group else []) + ["protocol", "attack", "loss"] + [f"{e:g}/255" for e in eps]
    out = []
    for k in sorted(lines):
        values = [clean.get((k[0], k[1])) if e == 0 else lines[k].get(e) for e in eps]
        out.append(([k[0]] if group else []) + list(k[1:]) + [v if v is not None else "" for v in values])
    return headers, out


def masking_gaps(rows: Sequence[dict], group: str | None = None) -> list[dict]:
    """Per (group, eps): worst-case accuracy under the paper protocol minus under the strong one.

    A large gap means the training-loss gradient misleads the attack (gradient masking), so the
    paper-protocol number overstates robustness."""
    worst: dict[tuple, float] = {}
    for r in rows:
        if r.get("metric") == "adversarial_accuracy" and r["attack"] == "worst":
            worst[(r.get(group, "") if group else "", r["eps"], r["protocol"])] = r["value"]
    out = []
    for (g, e, p), v in sorted(worst.items()):
        if p == "paper" and (g, e, "strong") in worst:
            out.append({"group": g, "eps": e, "paper": v, "strong": worst[(g, e, "strong")],
                        "gap": v - worst[(g, e, "strong")]})
    return out


def plot_curves(rows: Sequence[dict], path: str | Path, group: str | None = "label",
                attacks: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Accuracy vs eps as the study report draws it (one panel per protocol, attack and loss, one line
    per ``group`` value), for the given ``attacks`` (default all); written atomically as PNG."""
    from .figures import evaluation_figure, write_png

    rows = [r for r in rows if attacks is None or r.get("attack") in (*attacks, "none")]
    fig = evaluation_figure(list(rows), DRAWING, "robustness", hue=group, title=title)
    if fig is None:
        raise UserError("no adversarial_accuracy rows at two or more eps to plot")
    return write_png(fig.png, path)
