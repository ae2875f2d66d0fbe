"""Data efficiency: the same schedule on growing fractions of the training set, several seeds, per label space.

A sweep is a grid of ordinary runs (``label x fraction x seed``), each in its own run folder under
``out``; a finished run (one with ``summary.json``) is read back instead of retrained, so an
interrupted sweep continues where it stopped. ``balanced=False`` gives the paper's draw: a seeded
uniform 1 % (500 of 50,000 CIFAR-10 images), classes unbalanced.

``steps`` fixes the number of optimiser steps instead of epochs (epochs = steps / steps per epoch,
rounded up), so a 1 % run is not stopped after a handful of updates; ``epochs`` keeps the epoch
count the same for every fraction.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import config as config_mod
from ..errors import UserError

DEFAULT_FRACTIONS = (0.01, 0.02, 0.04, 0.08, 0.1, 0.2)


def run_name(label: str, fraction: float, seed: int, balanced: bool = True) -> str:
    return f"{label}-f{fraction:g}-s{seed}" + ("" if balanced else "-unbalanced")


def train_size(config: dict, cache: dict | None = None) -> int:
    """Images the run would train on (after the validation hold-out and the subset), without training."""
    from ..data import load_dataset
    from ..train.setup import select_training_images

    d = config["data"]
    key = json.dumps([d["dataset"], d["data_dir"], d["options"]], sort_keys=True, default=str)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = load_dataset(d["dataset"], d["data_dir"], d["download"], **d["options"])
    return len(select_training_images(cache[key], d, config["train"]["seed"])[0])


def epochs_for_steps(images: int, batch_size: int, steps: int) -> int:
    per_epoch = images // batch_size if images > batch_size else 1  # the loader drops the last partial batch
    return max(1, math.ceil(steps / per_epoch))


def sweep_configs(base: dict | None, labels: Sequence[str], fractions: Sequence[float], seeds: Sequence[int],
                  balanced: bool = True, steps: int | None = None) -> list[tuple[str, dict]]:
    """``(run name, resolved config)`` for every cell of the grid."""
    if not labels or not fractions or not seeds:
        raise UserError("a data-efficiency sweep needs at least one label space, fraction and seed")
    out, data_cache = [], {}
    for label in labels:
        for fraction in fractions:
            for seed in seeds:
                cfg = config_mod.resolve(base, {"label": {"name": label}, "train": {"seed": int(seed)},
                                                "data": {"fraction": float(fraction), "balanced": bool(balanced)}})
                if steps is not None:
                    cfg["train"]["epochs"] = epochs_for_steps(train_size(cfg, data_cache), cfg["optim"]["batch_size"], steps)
                out.append((run_name(label, fraction, seed, balanced), cfg))
    return out


def run_sweep(base: dict | None, labels: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
              seeds: Sequence[int] = (0, 1), out: str | Path = "runs/efficiency", balanced: bool = True,
              steps: int | None = None, hooks: Callable[[str], object] | None = None,
              on_run: Callable[[dict], None] | None = None,
              score: Callable[[object], float] | None = None) -> list[dict]:
    """Train (or read back) every run of the grid; returns one tidy row per run.

    Rows: ``{"metric": "test_accuracy", "value", "label", "fraction", "seed", "balanced",
    "train_images", "epochs", "run"}``. ``hooks(name)`` may give training hooks per run (a progress bar).
    ``score(parts)`` replaces the run's own final test accuracy (e.g. accuracy on another image set);
    a finished run is then loaded back to be scored.
    """
    from ..train import train

    out = Path(out)
    rows = []
    for name, cfg in sweep_configs(base, labels, fractions, seeds, balanced, steps):
        folder = out / name
        summary_file = folder / "summary.json"
        parts = None
        if summary_file.is_file():
            summary = json.loads(summary_file.read_text())
        else:
            result = train(cfg, out=folder, resume=True, hooks=hooks(name) if hooks else None)
            summary, parts = result.summary, result.parts
        value = summary["test_accuracy"]
        if score is not None:
            if parts is None:
                from ..run import load_run

                parts = load_run(folder).parts
            value = float(score(parts))
        row = {"metric": "test_accuracy", "value": value, "label": cfg["label"]["name"],
               "fraction": cfg["data"]["fraction"], "seed": cfg["train"]["seed"], "balanced": balanced,
               "train_images": summary["train_images"], "epochs": summary["epochs"], "run": str(folder)}
        rows.append(row)
        if on_run is not None:
            on_run(row)
    return rows


def summarize(rows: Sequence[dict], group: str = "label") -> list[dict]:
    """Mean and standard deviation over seeds per (group, fraction)."""
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("metric") == "test_accuracy":
            cells.setdefault((r[group], r["fraction"]), []).append(r["value"])
    return [{group: g, "fraction": f, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
             "seeds": len(v)} for (g, f), v in sorted(cells.items())]


def efficiency_table(rows: Sequence[dict], group: str = "label") -> tuple[list[str], list[list]]:
    """One line per label space, one column per fraction: ``mean ± std (n seeds)``."""
    stats = summarize(rows, group)
    fractions = sorted({s["fraction"] for s in stats})
    groups = sorted({s[group] for s in stats})
    cell = {(s[group], s["fraction"]): s for s in stats}
    body = []
    for g in groups:
        line = [g]
        for f in fractions:
            s = cell.get((g, f))
            line.append(f"{s['mean']:.3f} ± {s['std']:.3f} ({s['seeds']})" if s else "")
        body.append(line)
    return [group] + [f"{100 * f:g} %" for f in fractions], body


def plot_efficiency(rows: Sequence[dict], path: str | Path, group: str = "label", title: str | None = None) -> Path:
    """Test accuracy vs training fraction (log axis), mean and std over seeds, one line per label space."""
    from .figures import pyplot, save_figure

    plt = pyplot()
    stats = summarize(rows, group)
    if not stats:
        raise UserError("no test_accuracy rows to plot")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for g in sorted({s[group] for s in stats}):
        mine = [s for s in stats if s[group] == g]
        ax.errorbar([100 * s["fraction"] for s in mine], [s["mean"] for s in mine], yerr=[s["std"] for s in mine],
                    marker="o", ms=3, capsize=3, label=str(g))
    ax.set_xscale("log")
    ticks = sorted({100 * s["fraction"] for s in stats})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("training data (% of the training set)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
