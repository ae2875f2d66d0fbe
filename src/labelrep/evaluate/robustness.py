"""Accuracy under attack, three protocols, for every label space through ``loss`` and ``scores``.

- **paper** (Chen et al., *Beyond Categorical Label Representations*): the gradient is that of the
  model's training loss (Huber to the class's label for regressed spaces, cross-entropy for
  categorical ones); only images the model gets right are attacked, the rest count as wrong. FGSM
  and the iterative attack take 5 steps of eps/5 (the authors' ``num_steps = 5``); budgets given
  as ``paper_eps`` are in the authors' normalised units (``eps * std`` per channel, with the
  authors' CIFAR std 0.2023, 0.1994, 0.2010 on CIFAR). Adversarial images stay valid images
  ([0, 1]), and each step takes a fresh gradient.
- **paper_exact**: the authors' attack code to the letter, in their normalised space: FGSM clamps
  to each image's own [min, max] (their batch-1 ``image.min()``/``image.max()``), the iterative
  attack never clamps to the image range (their clamp is commented out) and steps along the sum of
  all gradients so far (their ``x.grad`` is never zeroed). Its images can leave [0, 1], so it is
  reported for comparison only and never enters the strong worst case.
- **strong**: the decision itself is attacked: non-saturating cross-entropy, the Carlini-Wagner
  margin and DLR on ``scores`` (minus distances act as logits), FGSM/BIM/PGD with restarts, and
  the reference AutoAttack (``pyautoattack``, fra31's code: APGD-CE, APGD-T, FAB-T, Square, on
  ``scores``). Its ``worst`` row counts an image as robust only if it survives every attack run,
  the paper protocol's included, so it is never above the paper protocol's nor AutoAttack's.

Masking flags sit beside the curves as rows of their own: ``zero_grad_fraction`` (attacked images
whose loss has an exactly zero input gradient), ``blackbox_beats_whitebox`` (images only the
black-box Square fooled), ``large_eps_accuracy`` (strong accuracy at eps = 128/255, which should be
about 0) and ``paper_minus_strong`` (the worst-case gap per eps: a label space that holds up under
the paper protocol but not the strong one is masking gradients, not robust).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..models.modes import eval_mode
from .attacks import (ATTACKS, NormalisedModel, PixelModel, ScoresModel, create_attack, dlr, eps_to_255, margin,
                      unsaturated_cross_entropy)
from .registry import Drawing, register_evaluation

PROTOCOLS: dict[str, tuple[str, ...]] = {"paper": ("train",), "paper_exact": ("train",),
                                         "strong": ("ce", "margin", "dlr")}
PAPER_EXACT_ATTACKS = ("fgsm", "bim")  # the two attacks of the authors' code
DEFAULT_ATTACKS = ("fgsm", "bim", "pgd")
DEFAULT_EPS_255 = (1.0, 2.0, 4.0, 8.0, 16.0)
PAPER_EPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # the budgets of the paper's Figure 3, normalised units
PAPER_STEPS = 5     # the authors' num_steps; their step is eps / num_steps
STRONG_STEPS = 10
LARGE_EPS_255 = 128.0
# The authors' normalisation (their cifar.py, used for CIFAR-10 and CIFAR-100 alike): their eps units.
PAPER_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
PAPER_CIFAR_STD = (0.2023, 0.1994, 0.2010)
PAPER_UNIT_DATASETS = ("cifar10", "cifar100")


def objective(label_space, loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The quantity an attack climbs, as ``fn(network output, labels)``.

    ``train``: the training loss to the class's label; ``ce``: non-saturating cross-entropy on
    scores (the same sign steps as exact CE, no underflow); ``ce_raw``: plain float32 CE on scores
    (what a stock CE attack climbs; it saturates on minus-distances); ``margin``, ``dlr``."""
    if loss == "train":
        return lambda output, labels: label_space.loss(output, label_space.targets(labels))
    if loss == "ce":
        return lambda output, labels: unsaturated_cross_entropy(label_space.scores(output), labels)
    if loss == "ce_raw":
        return lambda output, labels: F.cross_entropy(label_space.scores(output).float(), labels)
    if loss == "margin":
        return lambda output, labels: margin(label_space.scores(output), labels)
    if loss == "dlr":
        return lambda output, labels: dlr(label_space.scores(output), labels)
    raise UserError(f"unknown attack loss {loss!r}; known: train, ce, ce_raw, margin, dlr")


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


def zero_gradient(model, loss_fn, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Per image, whether d loss / d x is exactly zero (a gradient attack cannot move it at all)."""
    out = []
    with torch.enable_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().requires_grad_(True)
            grad = torch.autograd.grad(loss_fn(model(xb), labels[i:i + batch_size]), xb)[0]
            out.append(grad.flatten(1).abs().amax(1) == 0)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def normalisation_stats(normalize) -> tuple[list[float], list[float]]:
    """(mean, std) per channel in [0, 1] units of a ``Normalize``."""
    std = (1.0 / (255.0 * normalize.scale)).flatten()
    mean = (-normalize.shift.flatten() * std)
    return mean.tolist(), std.tolist()


def _eps_list(eps: Sequence[float] | None, paper: Sequence[float] | None, std: Sequence[float]):
    """[(pixel budget for the attack, eps in /255 for rows, paper eps or None)], ascending."""
    if paper is not None:
        for e in paper:
            if not float(e) > 0:
                raise UserError(f"paper budgets must be > 0 (normalised units), got {e}")
        budgets = [(torch.as_tensor([float(e) * float(s) for s in std], dtype=torch.float32), float(e)) for e in paper]
        return [(b, eps_to_255(b), pe) for b, pe in budgets]
    eps = DEFAULT_EPS_255 if eps is None else eps
    for e in eps:
        if not float(e) > 0:
            raise UserError(f"attack budgets must be > 0 (in 1/255 units), got {e}")
    return [(float(e) / 255.0, float(e), None) for e in eps]


def _autoattack_survivors(pixel, label_space, eps, version: str, seed: int, x01, labels, correct, predict,
                          batch_size: int) -> list[torch.Tensor]:
    """The reference AutoAttack (pyautoattack) on ``scores``; survivors after each phase.

    ``standard`` runs as AutoAttack does (each attack on the points still robust), split in two
    phases, white-box (APGD-CE, APGD-T, FAB-T) then black-box (Square), so the flag of what only
    Square found is free. A per-channel budget is attacked with its smallest channel (AutoAttack
    takes one number), a ball inside the threat model."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise UserError("the strong protocol's AutoAttack needs pyautoattack: pip install pyautoattack "
                        "(or autoattack: null to skip it)") from None
    if version not in ("standard", "apgd"):
        raise UserError(f"autoattack must be standard or apgd, got {version!r}")
    scalar = float(torch.as_tensor(eps).min()) if isinstance(eps, torch.Tensor) else float(eps)
    scores_model = ScoresModel(pixel, label_space)
    device = x01.device
    aa = AutoAttack(scores_model, eps=scalar, norm="Linf", version="standard", seed=seed, device=device)
    aa.verbose = False
    n_classes = label_space.num_classes
    aa.apgd_targeted.n_target_classes = min(aa.apgd_targeted.n_target_classes, n_classes - 1)
    aa.fab.n_target_classes = min(aa.fab.n_target_classes, n_classes - 1)
    phases = [["apgd-ce", "apgd-t", "fab-t"], ["square"]] if version == "standard" else [["apgd-ce", "apgd-dlr"]]
    alive = correct.clone()
    after = []
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # AutoAttack reseeds torch's global generator
        for phase in phases:
            todo = alive.nonzero().squeeze(1)
            if len(todo):
                aa.attacks_to_run = phase
                x_adv, _ = aa.run_standard_evaluation(x01[todo], labels[todo], batch_size=batch_size)
                alive[todo] = predict_pixels(pixel, predict, x_adv.to(device), batch_size) == labels[todo]
            after.append(alive.clone())
    return after


def reference_autoattack(model, label_space, normalize, images: torch.Tensor, labels: torch.Tensor, eps_255: float,
                         seed: int = 0, batch_size: int = 250) -> float:
    """Accuracy under the reference AutoAttack alone (pyautoattack, standard version, one run on the whole
    set, as its authors run it) on ``scores``: the yardstick the strong protocol must not be above."""
    from pyautoattack import AutoAttack

    device = next(model.parameters()).device
    x01 = (images.float() / 255.0 if images.dtype == torch.uint8 else images.float()).to(device)
    labels = labels.to(device)
    with eval_mode(model):
        scores = ScoresModel(PixelModel(model, normalize), label_space)
        aa = AutoAttack(scores, eps=float(eps_255) / 255.0, norm="Linf", version="standard", seed=seed, device=device)
        aa.verbose = False
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            x_adv, _ = aa.run_standard_evaluation(x01, labels, batch_size=batch_size)
        with torch.no_grad():
            return (scores(x_adv).argmax(1) == labels).float().mean().item()


def _attack_options(protocol: str, attack: str, steps: int, restarts: int, seed: int) -> dict:
    options: dict = {}
    if attack in ("bim", "pgd"):
        options["steps"] = steps
    if attack == "pgd":
        options.update(restarts=restarts, generator=torch.Generator().manual_seed(seed))
    if protocol == "paper_exact":
        options["clamp"] = "own" if attack == "fgsm" else None
        if attack != "fgsm":
            options["accumulate"] = True
    return options


def robust_accuracy(model, label_space, normalize, images: torch.Tensor, labels: torch.Tensor, *,
                    protocols: Iterable[str] = ("paper", "strong"),
                    attacks: Iterable[str] | Mapping[str, Iterable[str]] = DEFAULT_ATTACKS,
                    eps: Sequence[float] | None = None, paper: Sequence[float] | None = None,
                    units: tuple[Sequence[float], Sequence[float]] | None = None, steps: int | None = None,
                    restarts: int = 1, autoattack: str | None = "standard", flags: bool = True,
                    large_eps: float = LARGE_EPS_255, batch_size: int = 250, seed: int = 0) -> list[dict]:
    """Accuracy under attack per protocol, attack, loss and eps, and the masking flags, as tidy rows.

    ``images`` are uint8 ``[N, C, H, W]`` (or floats in [0, 1]); ``eps`` in 1/255 units, or
    ``paper`` budgets in normalised units of ``units`` = (mean, std) per channel (default: the
    run's own normalisation; ``robustness`` passes the authors' CIFAR statistics on CIFAR).
    ``attacks`` is one list for every protocol or ``{protocol: list}``; ``paper_exact`` runs only
    the authors' FGSM and iterative attack. ``steps``: BIM/PGD steps (default 5 for the paper
    protocols, 10 for strong). ``autoattack``: ``standard`` (default), ``apgd`` (APGD-CE and
    APGD-DLR only) or None. ``flags``: the masking rows.
    """
    protocols = list(protocols)
    for p in protocols:
        if p not in PROTOCOLS:
            raise UserError(f"unknown protocol {p!r}; known: {', '.join(PROTOCOLS)}")
    per_protocol = {}
    for p in protocols:
        if isinstance(attacks, Mapping) and p not in attacks:
            raise UserError(f"attacks gives lists for {', '.join(attacks)} but not for the protocol {p}")
        names = list(attacks[p] if isinstance(attacks, Mapping) else attacks)
        if p == "paper_exact":
            if isinstance(attacks, Mapping) and set(names) - set(PAPER_EXACT_ATTACKS):
                raise UserError("the paper_exact protocol has the authors' two attacks only: fgsm and bim")
            names = [a for a in names if a in PAPER_EXACT_ATTACKS]
        per_protocol[p] = names
    for a in (a for names in per_protocol.values() for a in names):
        ATTACKS.get(a)
    if steps is not None and steps < 1:
        raise UserError(f"an iterative attack needs at least 1 step, got {steps}")
    device = next(model.parameters()).device
    x01 = (images.float() / 255.0 if images.dtype == torch.uint8 else images.float()).to(device)
    labels = labels.to(device)
    pixel = PixelModel(model, normalize)
    mean_u, std_u = units if units is not None else normalisation_stats(normalize)
    normalised = NormalisedModel(pixel, mean_u, std_u).to(device)
    z = normalised.to_normalised(x01)
    std_t = torch.as_tensor(std_u, dtype=torch.float32)
    predict = predictor(label_space)
    with eval_mode(model):
        correct = predict_pixels(pixel, predict, x01, batch_size) == labels
        n = len(labels)
        base = {"metric": "adversarial_accuracy", "images": n}
        rows = []
        for p in protocols:
            rows.append({**base, "value": correct.float().mean().item(), "protocol": p, "attack": "none",
                         "loss": "none", "eps": 0.0})
        if flags:
            rows += _zero_gradient_rows(pixel, label_space, protocols, x01, labels, correct, batch_size)
        for budget, e255, pe in _eps_list(eps, paper, std_u):
            where = {"eps": e255} if pe is None else {"eps": e255, "paper_eps": pe,
                                                     "eps_channels": "/".join(f"{float(b) * 255:.3f}" for b in budget)}
            worst = {}
            white = square = None  # survivors of every white-box attack, and of Square after AutoAttack's
            for p in protocols:
                n_steps = steps or (STRONG_STEPS if p == "strong" else PAPER_STEPS)
                net, x, b = (normalised, z, _per_channel(budget) / std_t) if p == "paper_exact" else (pixel, x01, budget)
                alive_p = correct.clone()
                for loss in PROTOCOLS[p]:
                    fn = objective(label_space, loss)
                    for a in per_protocol[p]:
                        attack = create_attack(a, b, loss=fn, predict=predict,
                                               **_attack_options(p, a, n_steps, restarts, seed))
                        alive = survivors(net, attack, x, labels, correct, predict, batch_size)
                        alive_p &= alive
                        rows.append({**base, "value": alive.float().mean().item(), "protocol": p, "attack": a,
                                     "loss": loss, **where})
                if p == "strong" and autoattack:
                    phases = _autoattack_survivors(pixel, label_space, budget, autoattack, seed, x01, labels,
                                                   correct, predict, batch_size)
                    rows.append({**base, "value": phases[-1].float().mean().item(), "protocol": p,
                                 "attack": f"autoattack-{autoattack}", "loss": "ce+dlr", **where})
                    if len(phases) > 1:
                        white, square = alive_p & phases[0], phases[-1]
                    alive_p &= phases[-1]
                worst[p] = alive_p
            if "strong" in worst and "paper" in worst:  # min over everything run inside the threat model
                worst["strong"] = worst["strong"] & worst["paper"]
                if white is not None:
                    white = white & worst["paper"]
            for p in protocols:
                rows.append({**base, "value": worst[p].float().mean().item(), "protocol": p, "attack": "worst",
                             "loss": "any", **where})
            if flags and "strong" in worst:
                if "paper" in worst:
                    rows.append({**base, "metric": "paper_minus_strong", "protocol": "paper-strong", "attack": "worst",
                                 "loss": "any", **where,
                                 "value": (worst["paper"].float().mean() - worst["strong"].float().mean()).item()})
                if white is not None:
                    rows.append({**base, "metric": "blackbox_beats_whitebox", "protocol": "strong",
                                 "attack": "square", "loss": "margin", **where,
                                 "value": (white & ~square).float().mean().item()})
        if flags and "strong" in protocols:
            rows.append(_large_eps_row(pixel, label_space, x01, labels, correct, predict, large_eps,
                                       steps or STRONG_STEPS, restarts, seed, batch_size, base))
    return rows


def _per_channel(budget) -> torch.Tensor:
    return budget if isinstance(budget, torch.Tensor) else torch.tensor([float(budget)])


def _zero_gradient_rows(pixel, label_space, protocols, x01, labels, correct, batch_size) -> list[dict]:
    """Share of the attacked (correctly classified) images whose attack loss has a zero input gradient."""
    idx = correct.nonzero().squeeze(1)
    losses = {"train"} if {"paper", "paper_exact"} & set(protocols) else set()
    if "strong" in protocols:
        losses |= {"ce_raw", *PROTOCOLS["strong"]}
    rows = []
    for loss in sorted(losses):
        zero = zero_gradient(pixel, objective(label_space, loss), x01[idx], labels[idx], batch_size)
        rows.append({"metric": "zero_grad_fraction", "images": len(x01), "attacked": int(len(idx)),
                     "protocol": "paper" if loss == "train" else "strong", "attack": "gradient", "loss": loss,
                     "eps": 0.0, "value": zero.float().mean().item() if len(idx) else 0.0})  # at the clean image
    return rows


def _large_eps_row(pixel, label_space, x01, labels, correct, predict, large_eps, steps, restarts, seed,
                   batch_size, base) -> dict:
    """Strong accuracy at a budget so large (128/255 lets any image become mid-grey) that it should be ~0."""
    alive = correct.clone()
    for loss in ("ce", "margin"):
        attack = create_attack("pgd", large_eps / 255.0, loss=objective(label_space, loss), predict=predict,
                               steps=max(steps, 20), restarts=restarts, generator=torch.Generator().manual_seed(seed))
        alive &= survivors(pixel, attack, x01, labels, correct, predict, batch_size)
    return {**base, "metric": "large_eps_accuracy", "protocol": "strong", "attack": "pgd", "loss": "ce+margin",
            "eps": float(large_eps), "value": alive.float().mean().item()}


def evaluation_images(n_total: int, max_images: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, seeded choice of test images (the same for every run of a data set)."""
    if max_images is None or max_images >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:max_images])


def paper_units(dataset: str | None, normalize) -> tuple[list[float], list[float]]:
    """The normalisation the paper's eps units refer to: the authors' CIFAR statistics on CIFAR-10
    and CIFAR-100 (whatever the run normalised with), the run's own elsewhere."""
    if dataset in PAPER_UNIT_DATASETS:
        return list(PAPER_CIFAR_MEAN), list(PAPER_CIFAR_STD)
    return normalisation_stats(normalize)


# Curves of accuracy against eps, one panel per protocol, attack and loss, each starting at the clean
# accuracy of its protocol; the evaluation's other metrics (the masking flags) are notes beside them.
DRAWING = Drawing(x="eps", curves=("adversarial_accuracy",), series=("protocol", "attack", "loss"),
                  baseline={"attack": "none"}, baseline_match=("protocol",), title="Robustness",
                  names={"adversarial_accuracy": "accuracy under attack", "eps": "eps (1/255)"},
                  ignore=("images", "attacked", "eps_channels"))


@register_evaluation("robustness", "accuracy under FGSM/BIM/PGD and AutoAttack per eps (paper, paper_exact and "
                                   "strong protocols) with gradient-masking flags", drawing=DRAWING)
def robustness(run, protocols: Sequence[str] = ("paper", "strong"),
               attacks: Sequence[str] | Mapping[str, Sequence[str]] = DEFAULT_ATTACKS,
               eps: Sequence[float] | None = None, paper_eps: Sequence[float] | None = None,
               max_images: int | None = 1000, steps: int | None = None, restarts: int = 1,
               autoattack: str | None = "standard", flags: bool = True, batch_size: int = 250, seed: int = 0,
               figure: str | None = None) -> list[dict]:
    """Rows ``{"metric": "adversarial_accuracy", "value", "protocol", "attack", "loss", "eps" (1/255), ...}``
    and the masking flags (``zero_grad_fraction``, ``paper_minus_strong``, ``blackbox_beats_whitebox``,
    ``large_eps_accuracy``).

    ``eps`` in 1/255 units (default 1, 2, 4, 8, 16); ``paper_eps`` instead gives the paper's normalised
    budgets, converted per channel with the authors' std on CIFAR (0.3 -> 15.5/15.3/15.4 /255), the
    run's own elsewhere. ``attacks: [fgsm], protocols: [paper], flags: false`` is the cheap setting.
    """
    parts = run.parts
    test = parts.data.test
    idx = evaluation_images(len(test), max_images)
    units = paper_units(parts.config["data"].get("dataset"), parts.normalize)
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images[idx]),
                           torch.as_tensor(test.labels[idx]), protocols=protocols, attacks=attacks, eps=eps,
                           paper=paper_eps, units=units, steps=steps, restarts=restarts, autoattack=autoattack,
                           flags=flags, batch_size=batch_size, seed=seed)
    if figure:
        names = sorted({r["attack"] for r in rows if r["metric"] == "adversarial_accuracy"} - {"none"})
        plot_curves(rows, figure, group=None, attacks=names, title=parts.config["label"]["name"])
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
