"""Drawing tidy rows: the one set of figure functions the CLI commands and the study report share.

Rows are dicts ``{"metric", "value", <locating keys>...}`` (a study adds ``run``, its axes and
``seed``). An evaluation's ``Drawing`` (``evaluate.registry``) says how its rows become curves;
``evaluation_figure`` draws them, ``curves`` draws one panel's lines (mean over seeds with a 95 %
band, one line per ``hue`` value). Matplotlib is imported lazily (an optional dependency).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..files import atomic_write_bytes

BASE_KEYS = ("run", "seed", "evaluation", "metric", "value")
MAX_PANELS = 12
# Display names of the numbers every run has (an evaluation names its own in its Drawing).
NAMES = {"test_accuracy": "test accuracy", "final_train_loss": "final train loss", "train_loss": "train loss",
         "val_accuracy": "validation accuracy", "best_val_accuracy": "best validation accuracy",
         "test_accuracy_at_best_val": "test accuracy at best validation", "data.fraction": "training fraction"}


def pyplot(required: bool = True):
    """Matplotlib's pyplot on the Agg backend with the toolkit's style; None when absent and not required."""
    try:
        import matplotlib
    except ImportError:
        if not required:
            return None
        raise UserError("figures need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
                         "legend.fontsize": 8, "legend.frameon": False})
    return plt


def png_bytes(fig, dpi: int = 110) -> bytes:
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def write_png(png: bytes, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png)
    return path


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Render to memory, then write under a temporary name and rename (format from the suffix)."""
    plt = pyplot()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95 % confidence interval (Student t); no interval for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def format_stat(stat, digits: int = 4) -> str:
    """``(mean, ci, n)`` as text: ``mean ± ci``, or the mean alone."""
    if stat is None:
        return "-"
    mean, ci, n = stat
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def nice(name: str, names: dict | None = None) -> str:
    return {**NAMES, **(names or {})}.get(name, name.replace("_", " "))


def curve_axis(rows: list[dict], base: set, drawing=None) -> str | None:
    """The x of an evaluation's curves: its declared ``x``, else the first numeric locating key; only a
    key that takes several values makes curves (otherwise the rows are one number per run)."""
    ignore = set(drawing.ignore) if drawing is not None else set()
    numeric_keys = [k for k in sorted({k for r in rows for k in r} - base - ignore)
                    if all(numeric(r.get(k)) for r in rows if k in r) and len({r[k] for r in rows if k in r}) > 1]
    if drawing is not None and drawing.x is not None:
        return drawing.x if drawing.x in numeric_keys else None
    return numeric_keys[0] if numeric_keys else None


def panel_grid(plt, n: int, width: float = 3.1, height: float = 2.5, sharey: bool = False):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(width * cols + 0.6, 5.5), height * rows + 0.9),
                             squeeze=False, layout="constrained", sharey=sharey)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def colors_for(values: Sequence) -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {v: cmap(i % 10) for i, v in enumerate(values)}


def curves(ax, rows: list[dict], x_key: str, hue: str | None = None, colors: dict | None = None,
           log_x: bool = False) -> None:
    """Mean over seeds with a 95 % band, one line per ``hue`` value."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(r.get(hue) if hue else None, {}).setdefault(r[x_key], []).append(float(r["value"]))
    colors = colors or {}
    for hue_value, points in groups.items():
        xs = sorted(points)
        stats = [mean_ci(points[x]) for x in xs]
        ys = [s[0] for s in stats]
        color = colors.get(hue_value, "C0")
        ax.plot(xs, ys, marker="o", ms=3, lw=1.6, color=color, label=str(hue_value) if hue_value is not None else None)
        if any(s[1] for s in stats):
            lo = [s[0] - (s[1] or 0) for s in stats]
            hi = [s[0] + (s[1] or 0) for s in stats]
            if all(0.0 <= y <= 1.0 for y in ys) and "accuracy" in str(rows[0].get("metric", "")):
                lo, hi = [max(v, 0.0) for v in lo], [min(v, 1.0) for v in hi]  # accuracies live in [0, 1]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
    xs = sorted({x for pts in groups.values() for x in pts})
    if log_x and all(x > 0 for x in xs):
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.minorticks_off()
    elif 1 < len(xs) <= 8 and x_key != "epoch":
        ax.set_xticks(xs, [f"{x:g}" for x in xs])  # the values that were measured


def legend(fig, axes, title: str | None = None) -> None:
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if labels:
        fits = max(1, int(fig.get_figwidth() / (0.35 + 0.09 * max(len(str(x)) for x in labels))))
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), fits, 8), title=title)


def matching(rows: list[dict], keys: Sequence[str], values: Sequence) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in zip(keys, values))]


def facet_title(facets: Sequence[str], values: Sequence) -> str:
    return ", ".join(f"{nice(f)} = {v}" for f, v in zip(facets, values))


@dataclass
class Figure:
    """A drawn figure with what a page shows beside it."""

    title: str
    name: str                  # file name
    caption: str
    png: bytes
    numbers: tuple | None = None   # (headers, rows): the curves' numbers
    notes: tuple | None = None     # (headers, rows): the evaluation's other metrics
    extra: dict = field(default_factory=dict)


def _panels(rows: list[dict], drawing, base: set, x_key: str):
    """Curves grouped into panels ``[((metric, series values...), rows)]`` and the series keys."""
    numeric_keys = {k for k in {k for r in rows for k in r} - base if all(numeric(r.get(k)) for r in rows if k in r)}
    series = list(drawing.series)
    labels = series + sorted({k for r in rows for k in r} - base - numeric_keys - set(drawing.ignore) - set(series))
    rows = [r for r in rows if x_key in r]
    base_rows = [r for r in rows if drawing.baseline and all(r.get(k) == v for k, v in drawing.baseline.items())]
    lines = [r for r in rows if r not in base_rows] if base_rows else rows
    groups: dict[tuple, list[dict]] = {}
    for r in lines:
        groups.setdefault((r["metric"], *(str(r.get(k, "")) for k in labels)), []).append(r)
    for key, mine in groups.items():  # a baseline row starts every curve that shares its match keys
        shared = [(k, key[1 + labels.index(k)]) for k in drawing.baseline_match if k in labels]
        mine += [{**b, x_key: drawing.baseline_x} for b in base_rows if b["metric"] == key[0]
                 and all(str(b.get(k, "")) == v for k, v in shared)]
    unique: dict[str, tuple] = {}  # keep one of several identical curves (e.g. "worst" over a single attack)
    for key, mine in groups.items():
        sig = json.dumps(sorted((str(r.get("run")), r[x_key], r["value"]) for r in mine))
        unique.setdefault(sig, (key, mine))
    return list(unique.values()), labels


def _curve_name(key: tuple, drawing) -> str:
    return " · ".join(v for v in key[1:] if v not in drawing.hide)


def _numbers(panels, combos, facets, labels, x_key, hue, hues, drawing):
    """Every curve as a table row: mean ± 95 % CI over seeds at each x (all panels, none capped)."""
    xs = sorted({r[x_key] for _, mine in panels for r in mine})
    shown_facets = facets if len(combos) > 1 else []  # a single facet value is in the caption
    headers = [" · ".join(labels) or "curve", *shown_facets, *([hue] if hue else []), *(f"{x:g}" for x in xs)]
    lines = []
    for key, mine in panels:
        for values in combos:
            for h in hues:
                sub = [r for r in matching(mine, facets, values) if hue is None or r.get(hue) == h]
                if not sub:
                    continue
                at: dict = {}
                for r in sub:
                    at.setdefault(r[x_key], []).append(float(r["value"]))
                cells = [format_stat((*mean_ci(at[x]), len(at[x])), 3) if x in at else "-" for x in xs]
                lines.append([_curve_name(key, drawing) or key[0], *(map(str, values) if shown_facets else []),
                              *([str(h)] if hue else []), *cells])
    return headers, lines


def notes_table(rows: list[dict], base: set, hue: str | None = None, hues: Sequence = (None,)):
    """The evaluation's metrics that are not curves: one line per metric and locating keys, one column
    per hue value (mean ± 95 % CI over seeds)."""
    keys = sorted({k for r in rows for k in r} - base - ({hue} if hue else set()) - {"images"})
    groups: dict[tuple, dict] = {}
    for r in rows:
        if numeric(r.get("value")):
            where = tuple((k, r[k]) for k in keys if k in r)
            groups.setdefault((r["metric"], where), {}).setdefault(r.get(hue) if hue else None, []).append(
                float(r["value"]))
    if not groups:
        return None
    headers = ["metric", "where", *([str(h) for h in hues] if hue else ["value"])]
    lines = [[metric, "; ".join(f"{k}={v}" for k, v in where) or "-",
              *(format_stat((*mean_ci(vals[h]), len(vals[h])), 3) if h in vals else "-" for h in hues)]
             for (metric, where), vals in groups.items()]
    return headers, lines


def evaluation_figure(rows: list[dict], drawing, name: str, base: Sequence[str] = BASE_KEYS,
                      hue: str | None = None, hue_values: Sequence | None = None, facets: Sequence[str] = (),
                      facet_values: Sequence[tuple] | None = None, title: str | None = None) -> Figure | None:
    """An evaluation's rows as curves along its x: one panel per metric and series, one line per hue
    value, panels repeated per facet value; None when the rows have no curve (one number per run)."""
    plt = pyplot()
    base = set(base) | set(facets) | ({hue} if hue else set())
    drawn = [r for r in rows if not drawing.curves or r["metric"] in drawing.curves]
    others = [r for r in rows if drawing.curves and r["metric"] not in drawing.curves]
    x_key = curve_axis(drawn, base, drawing)
    if x_key is None:
        return None
    panels, labels = _panels(drawn, drawing, base, x_key)
    facets = list(facets)
    combos = [c for c in (facet_values or [()]) if matching(drawn, facets, c)] or [()]
    hues = list(hue_values) if hue and hue_values is not None else (
        list(dict.fromkeys(r.get(hue) for r in drawn)) if hue else [None])
    colors = colors_for(hues)
    numbers = _numbers(panels, combos, facets, labels, x_key, hue, hues, drawing)
    total = len(panels) * len(combos)
    if total > MAX_PANELS:
        combos = combos[:max(1, MAX_PANELS // len(panels))]
        panels = panels[:MAX_PANELS // len(combos)]
    same_metric = len({key[0] for key, _ in panels}) == 1
    fig, axes = panel_grid(plt, len(panels) * len(combos), sharey=same_metric)
    i = 0
    for values in combos:
        for key, mine in panels:
            ax = axes[i]
            i += 1
            curves(ax, matching(mine, facets, values), x_key, hue, colors, drawing.log_x)
            ax.set_xlabel(nice(x_key, drawing.names))
            if (i - 1) % 4 == 0 or not same_metric:
                ax.set_ylabel(nice(key[0], drawing.names))
            panel = _curve_name(key, drawing)
            if len(combos) > 1:
                panel += "\n" + facet_title(facets, values)
            ax.set_title(panel, fontsize=9)
    legend(fig, axes, nice(hue) if hue else None)
    metric = nice(panels[0][0][0], drawing.names)
    title = title or drawing.title or f"{name}: {metric} against {x_key}"
    fig.suptitle(title)
    only = [f"{nice(f)} = {v}" for f, v in zip(facets, combos[0])] if len(combos) == 1 and facets else []
    caption = (f"Evaluation '{name}': {metric} against {nice(x_key, drawing.names)}, mean over seeds with a 95 % band"
               + (f"; panel titles give {' · '.join(labels)}" if labels else "")
               + (f"; runs with {', '.join(only)}" if only else "")
               + (f" (showing {len(panels) * len(combos)} of {total} panels)" if total > MAX_PANELS else "") + ".")
    notes = notes_table(others, base, hue, hues) if others else None
    return Figure(title, f"eval-{name}.png", caption, png_bytes(fig), numbers, notes)
