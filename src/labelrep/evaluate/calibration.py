"""Calibration: expected calibration error, reliability diagrams, temperature-fitted softmax over ``scores``.

Every label space gives ``scores`` (logits for categorical heads, minus distances for regressed
ones); ``softmax(scores / T)`` turns them into probabilities. For categorical and soft-label models
T = 1 is the model's own confidence; for regressed spaces only a fitted T means anything. T is
fitted by minimising the negative log-likelihood on held-out images (the run's validation split,
or else one half of the chosen test images) and the ECE is measured on the other images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .registry import register_evaluation


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> list[dict]:
    """Per confidence bin: its edges, image count, mean confidence and accuracy (the diagram's bars).

    Equal-width bins, bin i holding confidences in (edge i, edge i+1], as torchmetrics bins them.
    """
    conf, pred = probs.float().max(1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    which = torch.bucketize(conf, edges[1:-1])
    out = []
    for i in range(bins):
        m = which == i
        n = int(m.sum())
        out.append({"low": float(edges[i]), "high": float(edges[i + 1]), "count": n,
                    "confidence": float(conf[m].mean()) if n else float("nan"),
                    "accuracy": float(correct[m].mean()) if n else float("nan")})
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (L1): the count-weighted gap between accuracy and confidence over the reliability bins
    (the same number as torchmetrics' ``multiclass_calibration_error``; a test checks it)."""
    table = reliability(probs, labels, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        raise UserError("calibration needs at least one image")
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]))


def fit_temperature(scores: torch.Tensor, labels: torch.Tensor, iters: int = 100) -> float:
    """The T minimising the NLL of ``softmax(scores / T)`` (fitted as log T, L-BFGS)."""
    scores = scores.detach().double()
    # start where the scores' spread is about one unit, so minus-distances in the hundreds converge too
    spread = float(scores.std(1).mean()) if scores.shape[1] > 1 else 1.0
    log_t = torch.tensor([np.log(max(spread, 1e-6))], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(scores / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def calibration(scores_fit: torch.Tensor, labels_fit: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                bins: int = 15) -> tuple[list[dict], dict]:
    """Rows for T = 1 and the fitted T (ECE, NLL, accuracy), and the reliability bins of each."""
    t = fit_temperature(scores_fit, labels_fit)
    rows, diagrams = [], {}
    for name, temp in (("1", 1.0), ("fitted", t)):
        probs = torch.softmax(scores.double() / temp, 1)
        key = {"temperature": name, "bins": bins, "images": len(labels)}
        rows += [{"metric": "ece", "value": expected_calibration_error(probs, labels, bins), **key},
                 {"metric": "nll", "value": float(F.nll_loss(probs.clamp_min(1e-300).log(), labels)), **key},
                 {"metric": "mean_confidence", "value": float(probs.max(1)[0].mean()), **key}]
        diagrams[name] = reliability(probs, labels, bins)
    rows.append({"metric": "temperature", "value": t, "temperature": "fitted"})
    rows.append({"metric": "accuracy", "value": float((scores.argmax(1) == labels).float().mean()),
                 "images": len(labels)})
    return rows, diagrams


@register_evaluation("calibration", "ECE and NLL of softmax(scores / T), T = 1 and fitted on held-out images")
def calibration_evaluation(run, bins: int = 15, max_images: int | None = None, seed: int = 0,
                           figure: str | None = None) -> list[dict]:
    """Fits T on the run's validation split if it has one, else on a seeded half of the test images."""
    from .accuracy import predict_scores
    from .robustness import evaluation_images

    parts = run.parts
    test = parts.data.test
    test = test.take(evaluation_images(len(test), max_images, seed))
    scores = predict_scores(parts.model, parts.label_space, parts.loader(test)).cpu()
    labels = torch.as_tensor(test.labels)
    if parts.val is not None:
        fit_scores = predict_scores(parts.model, parts.label_space, parts.loader(parts.val)).cpu()
        fit_labels, held = torch.as_tensor(parts.val.labels), "validation"
    else:
        if len(labels) < 4:
            raise UserError("calibration needs at least 4 test images when the run has no validation split")
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        half = len(labels) // 2
        fit_scores, fit_labels = scores[perm[:half]], labels[perm[:half]]
        scores, labels, held = scores[perm[half:]], labels[perm[half:]], "test half"
    rows, diagrams = calibration(fit_scores, fit_labels, scores, labels, bins)
    for r in rows:
        r["fit_on"] = held
    if figure:
        plot_reliability({parts.config["label"]["name"]: diagrams}, figure)
    return rows


def plot_reliability(diagrams: Mapping[str, Mapping[str, Sequence[dict]]], path: str | Path) -> Path:
    """Reliability diagrams, one panel per run (``{name: {"1": bins, "fitted": bins}}``)."""
    from .figures import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(diagrams), figsize=(3.6 * len(diagrams), 3.6), squeeze=False)
    for ax, (name, by_t) in zip(axes[0], diagrams.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for (t, bins_), off in zip(by_t.items(), (-0.25, 0.25)):
            bins_ = [b for b in bins_ if b["count"]]
            width = bins_[0]["high"] - bins_[0]["low"] if bins_ else 0.1
            ax.bar([(b["low"] + b["high"]) / 2 + off * width / 2 for b in bins_], [b["accuracy"] for b in bins_],
                   width=width / 2, alpha=0.7, label=f"T = {t}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    return save_figure(fig, path)
