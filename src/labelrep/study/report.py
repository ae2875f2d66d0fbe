"""A study's report, rebuilt from what is on disk: tidy tables, figures, an HTML page, a markdown summary.

Files written into the study folder (each atomically):

- ``results.csv`` / ``results.jsonl`` (and ``results.parquet`` with pyarrow): one row per run and
  number: ``run, <axes...>, seed, evaluation, metric, value`` plus whatever keys locate the number
  (``epoch``, ``eps``, ``protocol``...). No timings: two studies of the same grid give equal tables.
- ``runs.csv``: one row per run: cell, status, error, training images, seconds of training (all attempts,
  from the run's summary) and of its last attempt (training and evaluations).
- ``summary.csv``: mean and 95 % confidence interval over seeds of every scalar metric per cell.
- ``report.html`` (self-contained: figures embedded as PNG), ``report.md`` and ``figures/*.png``.

The report draws what the rows hold and skips what is absent: learning curves (``epoch``), sweeps over a
numeric axis such as ``data.fraction`` (data efficiency), curves of evaluation rows over their varying
numeric key (``eps`` for robustness, ``recall`` for PR curves...) with the numbers behind them, a table
of every number that comes one per run (mean and 95 % CI over seeds), label statistics and pictures of
the label tables, and the figures evaluations draw themselves (``figure: true``: t-SNE maps...).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import atomic_path, atomic_write_bytes, atomic_write_text
from .runner import DONE, EVAL_DIR, FAILED, LABELS_FILE, PLAN_FILE, read_status

HISTORY_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy", "train_loss", "lr")
TRAINING_METRICS = ("test_accuracy", "final_train_loss", "best_val_accuracy", "test_accuracy_at_best_val")
# Preferred x-axis among a curve's varying numeric keys.
X_KEYS = ("eps", "fraction", "epoch", "progress", "recall", "threshold", "step", "noise", "temperature")
MAX_PANELS = 12
NICE = {"test_accuracy": "test accuracy", "final_train_loss": "final train loss", "train_loss": "train loss",
        "val_accuracy": "validation accuracy", "best_val_accuracy": "best validation accuracy",
        "test_accuracy_at_best_val": "test accuracy at best validation", "data.fraction": "training fraction",
        "adversarial_accuracy": "accuracy under attack", "eps": "eps (1/255)"}


def nice(name: str) -> str:
    return NICE.get(name, name.replace("_", " "))


# ---------------------------------------------------------------- collecting rows

@dataclass
class StudyData:
    path: Path
    name: str
    description: str
    axes: list[dict]                       # [{"name", "values"}], without seed
    evaluations: list[dict]
    runs: list[dict]                       # plan entries + status, summary, train_images...
    rows: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)  # figures evaluations drew (figure: true), per run
    labels: dict = field(default_factory=dict)        # label key -> statistics of the label table

    @property
    def axis_names(self) -> list[str]:
        return [a["name"] for a in self.axes]

    @property
    def columns(self) -> list[str]:
        """Columns of the tidy table, in a fixed order."""
        base = ["run", *self.axis_names, "seed", "evaluation", "metric", "value"]
        extra = sorted({k for r in self.rows for k in r} - set(base))
        return base + extra


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _single_run_plan(path: Path) -> dict:
    """A bare run folder reads as a study of one run with no axes."""
    evals = sorted((path / EVAL_DIR).glob("*.json")) if (path / EVAL_DIR).is_dir() else []
    evaluations = []
    for file in evals:
        data = _read_json(file) or {}
        evaluations.append({"name": data.get("name", file.stem), "options": data.get("options", {}),
                            "key": file.stem})
    summary = _read_json(path / "summary.json") or {}
    return {"name": path.name, "description": "", "axes": [], "evaluations": evaluations,
            "runs": [{"id": path.name, "cell": {"seed": summary.get("seed", 0)}, "folder": "."}]}


def collect(path: str | Path) -> StudyData:
    """Read a study folder (or one run folder) into tidy rows."""
    path = Path(path)
    if (path / PLAN_FILE).is_file():
        plan = _read_json(path / PLAN_FILE)
        if plan is None:
            raise UserError(f"{path / PLAN_FILE} cannot be read; rerun the study to rewrite it")
    elif (path / "config.yaml").is_file():
        plan = _single_run_plan(path)
    else:
        raise UserError(f"{path} is neither a study folder (no {PLAN_FILE}) nor a run folder (no config.yaml)")
    data = StudyData(path, plan["name"], plan.get("description", ""), plan["axes"], plan["evaluations"], [])
    eval_names = [e["name"] for e in plan["evaluations"]]
    order = [*data.axis_names, "seed"]
    for entry in plan["runs"]:
        entry = {**entry, "cell": {k: entry["cell"][k] for k in sorted(entry["cell"], key=lambda k: (
            order.index(k) if k in order else len(order), k))}}  # plan.json sorts keys: back to axis order
        folder = path / entry["folder"]
        status = read_status(folder)
        if entry["folder"] == "." and status.get("status") != FAILED and (folder / "summary.json").is_file():
            status = {**status, "status": DONE}  # a plain run folder from labelrep train
        summary = _read_json(folder / "summary.json") or {}
        run = {**entry, "status": status.get("status", "pending"), "error": status.get("error"),
               "seconds": status.get("seconds"), "train_seconds": summary.get("seconds"),
               "train_images": summary.get("train_images"),
               "epochs": summary.get("epochs")}
        data.runs.append(run)
        if run["status"] != DONE:
            continue
        where = {"run": entry["id"], **entry["cell"]}
        stats = _read_json(folder / LABELS_FILE)
        if stats is not None and stats["key"] not in data.labels:
            picture = path / "labels" / f"{stats['key']}.png"
            data.labels[stats["key"]] = {**stats, "cell": entry["cell"],
                                         "png": picture.read_bytes() if picture.is_file() else None}
        for metric in TRAINING_METRICS:
            if summary.get(metric) is not None:
                data.rows.append({**where, "evaluation": "training", "metric": metric, "value": summary[metric]})
        history_file = folder / "metrics.jsonl"
        if history_file.is_file():
            for line in history_file.read_text().splitlines():
                record = json.loads(line)
                for metric in HISTORY_METRICS:
                    if metric in record:
                        data.rows.append({**where, "evaluation": "history", "metric": metric,
                                          "value": record[metric], "epoch": record["epoch"]})
        for ev in plan["evaluations"]:
            result = _read_json(folder / EVAL_DIR / f"{ev['key']}.json")
            if result is None:
                continue
            label = ev["name"] if eval_names.count(ev["name"]) == 1 else ev["key"]
            picture = folder / "figures" / f"{ev['key']}.png"
            if ev.get("options", {}).get("figure") is True and picture.is_file():
                data.images.append({"evaluation": label, "run": entry["id"], "cell": entry["cell"],
                                    "png": picture.read_bytes(),
                                    "file": f"{entry['folder']}/figures/{ev['key']}.png".lstrip("./")})
            for row in result["rows"]:
                extra = {k: v for k, v in row.items() if k not in ("metric", "value") and k not in where}
                data.rows.append({**where, "evaluation": label, "metric": row["metric"], "value": row["value"],
                                  **extra})
    return data


# ---------------------------------------------------------------- statistics

def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95 % confidence interval (Student t); no interval for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


BASE_KEYS = ("run", "seed", "evaluation", "metric", "value")


def curve_axis(rows: list[dict], base: set) -> str | None:
    """The x of an evaluation's curves: a numeric locating key that takes several values."""
    numeric = [k for k in sorted({k for r in rows for k in r} - base)
               if all(_numeric(r.get(k)) for r in rows if k in r) and len({r[k] for r in rows if k in r}) > 1]
    if not numeric:
        return None
    return next((k for k in X_KEYS if k in numeric), numeric[0])


def scalar_keys(data: StudyData) -> list[tuple]:
    """Columns of the summary table: ``(evaluation, metric, ((key, value), ...))``, one number per run.

    Evaluations whose rows vary along a numeric key are curves (drawn, not tabulated); a text key that
    takes several values within a metric (``temperature: 1 | fitted``) splits it into columns."""
    base = {*BASE_KEYS, *data.axis_names}
    by_eval: dict[str, list[dict]] = {}
    for r in data.rows:
        if r["evaluation"] != "history":
            by_eval.setdefault(r["evaluation"], []).append(r)
    keys = []
    for ev, rows in by_eval.items():
        if ev != "training" and curve_axis(rows, base):
            continue
        by_metric: dict[str, list[dict]] = {}
        for r in rows:
            by_metric.setdefault(r["metric"], []).append(r)
        for metric, mrows in by_metric.items():
            split = sorted(k for k in {k for r in mrows for k in r} - base
                           if len({json.dumps(r.get(k), default=str) for r in mrows}) > 1)
            for combo in dict.fromkeys(tuple((k, r.get(k)) for k in split) for r in mrows):
                keys.append((ev, metric, combo))
    return keys


def _matches(row: dict, key: tuple) -> bool:
    return row["evaluation"] == key[0] and row["metric"] == key[1] and all(row.get(k) == v for k, v in key[2])


def column_name(key: tuple, keys: list[tuple]) -> str:
    name = nice(key[1]) + (" (" + ", ".join(f"{k} {v}" for k, v in key[2]) + ")" if key[2] else "")
    if sum(nice(k[1]) + str(k[2]) == nice(key[1]) + str(key[2]) for k in keys) > 1:
        return f"{name} [{key[0]}]"
    return name


@dataclass
class SummaryTable:
    headers: list[str]
    cells: list[list]        # axis values..., then (mean, ci, n) per column
    keys: list[tuple]        # (evaluation, metric, locating keys) per column


HEADLINE = ("training", "test_accuracy", ())


def summary_table(data: StudyData) -> SummaryTable:
    keys = scalar_keys(data)
    # The headline first: final test accuracy, then the evaluations' numbers in the order they came.
    keys.sort(key=lambda k: (k != HEADLINE, k[0] == "training"))
    n = len(data.axis_names)
    per_run: dict[tuple, list[float]] = {}
    cell_of = {run["id"]: tuple(run["cell"].get(a) for a in data.axis_names) for run in data.runs}
    order = list(dict.fromkeys(cell_of.values()))
    for r in data.rows:
        if r["evaluation"] == "history" or not _numeric(r["value"]):
            continue
        for j, key in enumerate(keys):
            if _matches(r, key):
                per_run.setdefault((r["run"], j), []).append(float(r["value"]))
    values: dict[tuple, list[float]] = {}
    for (run, j), vs in per_run.items():  # one number per run (the mean, should a run give several)
        values.setdefault((cell_of[run], j), []).append(sum(vs) / len(vs))
    lines = []
    for cell in order:
        stats = [(*mean_ci(values[(cell, j)]), len(values[(cell, j)])) if (cell, j) in values else None
                 for j in range(len(keys))]
        if any(st is not None for st in stats):
            lines.append([*cell, *stats])
    # A column equal to an earlier one everywhere (the accuracy evaluation repeats the final test
    # accuracy) is left to results.csv.
    keep = [j for j in range(len(keys))
            if not any(all(line[n + i] == line[n + j] for line in lines) for i in range(j))]
    keys = [keys[j] for j in keep]
    lines = [[*line[:n], *(line[n + j] for j in keep)] for line in lines]
    headers = [*data.axis_names, *(column_name(k, keys) for k in keys)]
    return SummaryTable(headers, lines, keys)


def format_stat(stat, digits: int = 4) -> str:
    if stat is None:
        return "-"
    mean, ci, n = stat
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


# ---------------------------------------------------------------- figures

def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
                         "legend.fontsize": 8, "legend.frameon": False})
    return plt


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Figures:
    """Picks the axis that colours lines (the first non-numeric axis) and the one that splits panels."""

    def __init__(self, data: StudyData, plt):
        self.data, self.plt = data, plt
        self.numeric_axes = [a["name"] for a in data.axes
                             if len(a["values"]) > 1 and all(_numeric(v) for v in a["values"])]
        multi = [a["name"] for a in data.axes if len(a["values"]) > 1]
        categorical = [a for a in multi if a not in self.numeric_axes]
        self.hue = categorical[0] if categorical else None
        self.facets = [a for a in multi if a != self.hue]
        values = next((a["values"] for a in data.axes if a["name"] == self.hue), [None])
        cmap = plt.get_cmap("tab10")
        self.colors = {v: cmap(i % 10) for i, v in enumerate(values)}
        self.figures: list[tuple[str, str, str]] = []  # (title, file name, caption)
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}  # file name -> the curves' numbers

    # -- helpers
    def _facet_values(self, facets: list[str]) -> list[tuple]:
        seen = []
        for run in self.data.runs:
            v = tuple(run["cell"].get(f) for f in facets)
            if v not in seen:
                seen.append(v)
        return seen

    def _panels(self, n: int, width: float = 3.1, height: float = 2.5, sharey: bool = False):
        cols = min(n, 4)
        rows = math.ceil(n / cols)
        fig, axes = self.plt.subplots(rows, cols, figsize=(max(width * cols + 0.6, 5.5), height * rows + 0.9),
                                      squeeze=False, layout="constrained", sharey=sharey)
        flat = [ax for row in axes for ax in row]
        for ax in flat[n:]:
            ax.set_visible(False)
        return fig, flat[:n]

    def _lines(self, ax, rows: list[dict], x_key: str, log_x: bool = False):
        """Mean over seeds with a 95 % band, one line per hue value."""
        groups: dict = {}
        for r in rows:
            groups.setdefault(r.get(self.hue) if self.hue else None, {}).setdefault(r[x_key], []).append(
                float(r["value"]))
        for hue_value, points in groups.items():
            xs = sorted(points)
            stats = [mean_ci(points[x]) for x in xs]
            ys = [s[0] for s in stats]
            color = self.colors.get(hue_value, "C0")
            ax.plot(xs, ys, marker="o", ms=3, lw=1.6, color=color,
                    label=str(hue_value) if hue_value is not None else None)
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

    def _finish(self, fig, axes, title: str, name: str, caption: str):
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if labels:
            fits = max(1, int(fig.get_figwidth() / (0.35 + 0.09 * max(len(str(x)) for x in labels))))
            fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), fits, 8),
                       title=nice(self.hue) if self.hue else None)
        self.figures.append((title, name, caption))
        return fig

    def _facet_title(self, facets, values) -> str:
        return ", ".join(f"{nice(f)} = {v}" for f, v in zip(facets, values))

    # -- the figures
    def learning_curves(self):
        """One row of panels per metric (test accuracy, training loss), one column per facet."""
        rows = [r for r in self.data.rows if r["evaluation"] == "history"]
        metrics = [m for m in ("test_accuracy", "train_loss") if any(r["metric"] == m for r in rows)]
        if not metrics:
            return []
        every = [c for c in self._facet_values(self.facets)  # cells with finished runs only
                 if any(all(r.get(f) == v for f, v in zip(self.facets, c)) for r in rows)]
        combos = every[:6]
        cols = len(combos)
        fig, grid = self.plt.subplots(len(metrics), cols, figsize=(min(3.4 * cols, 17) + 0.6, 2.6 * len(metrics) + 0.9),
                                      squeeze=False, sharey="row", layout="constrained")
        from matplotlib.ticker import MaxNLocator

        for i, metric in enumerate(metrics):
            for j, values in enumerate(combos):
                ax = grid[i][j]
                mine = [r for r in rows if r["metric"] == metric
                        and all(r.get(f) == v for f, v in zip(self.facets, values))]
                self._lines(ax, mine, "epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if "loss" in metric and all(r["value"] > 0 for r in rows if r["metric"] == metric):
                    ax.set_yscale("log")  # cross-entropy and Huber losses differ by orders of magnitude
                if i == len(metrics) - 1:
                    ax.set_xlabel("epoch")
                if j == 0:
                    ax.set_ylabel(nice(metric))
                if i == 0 and self.facets:
                    ax.set_title(self._facet_title(self.facets, values))
        shown = "" if len(combos) == len(every) else f" (the first {len(combos)} of {len(every)} panels)"
        axes = [ax for row in grid for ax in row]
        return [self._finish(fig, axes, "Learning curves", "learning-curves.png",
                             "Test accuracy and training loss per epoch, mean over seeds with a 95 % band"
                             f"{shown}.")]

    def sweeps(self):
        """Scalar metrics against each numeric axis (data.fraction gives the data-efficiency curve)."""
        out = []
        keys = summary_table(self.data).keys  # sorted, duplicates left out
        scalars = [k for k in keys if k[0] != "training" or k == HEADLINE][:4]
        for axis in self.numeric_axes:
            others = [f for f in self.facets if f != axis]
            present = [c for c in self._facet_values(others)
                       if any(all(r.get(f) == v for f, v in zip(others, c)) for r in self.data.rows)]
            combos = present[:max(1, MAX_PANELS // len(scalars))] if others else [()]
            fig, axes = self._panels(len(combos) * len(scalars))
            i = 0
            for values in combos:
                for key in scalars:
                    ax = axes[i]
                    i += 1
                    mine = [r for r in self.data.rows if _matches(r, key)
                            and all(r.get(f) == v for f, v in zip(others, values))]
                    self._lines(ax, mine, axis, log_x="fraction" in axis)
                    ax.set_xlabel(nice(axis))
                    ax.set_ylabel(column_name(key, scalars))
                    if others:
                        ax.set_title(self._facet_title(others, values))
            is_fraction = "fraction" in axis
            title = "Data efficiency" if is_fraction else f"Sweep over {axis}"
            caption = ("Test accuracy against the fraction of the training set used (log scale)"
                       if is_fraction else f"Final numbers against {axis}") + ", mean over seeds with a 95 % band."
            out.append(self._finish(fig, axes, title, f"sweep-{axis.replace('.', '-')}.png", caption))
        return out

    def evaluation_curves(self):
        """Rows of an evaluation that vary along a numeric key: one panel per remaining combination."""
        out = []
        base = {"run", *self.data.axis_names, "seed", "evaluation", "metric", "value"}
        by_eval: dict[str, list[dict]] = {}
        for r in self.data.rows:
            if r["evaluation"] not in ("history", "training"):
                by_eval.setdefault(r["evaluation"], []).append(r)
        for name, rows in by_eval.items():
            x_key = curve_axis(rows, base)
            if x_key is None:
                continue
            numeric = [k for k in {k for r in rows for k in r} - base if all(_numeric(r.get(k)) for r in rows if k in r)]
            labels = sorted({k for r in rows for k in r} - base - set(numeric) - {"images"},
                            key=lambda k: (k not in ("protocol", "attack", "loss"), ("protocol", "attack", "loss").index(k)
                                           if k in ("protocol", "attack", "loss") else 0, k))
            # A baseline row (attack "none" at eps 0) belongs at the start of every attack's curve.
            rows = [r for r in rows if x_key in r]
            baseline = [r for r in rows if r.get("attack") == "none"]
            curves = [r for r in rows if r.get("attack") != "none"]
            groups: dict[tuple, list[dict]] = {}
            for r in curves:
                groups.setdefault((r["metric"], *(str(r.get(k, "")) for k in labels)), []).append(r)
            for key, mine in groups.items():
                if baseline and "protocol" in labels:
                    p = key[1 + labels.index("protocol")]
                    mine += [{**b, x_key: 0.0} for b in baseline if str(b.get("protocol", "")) == p
                             and b["metric"] == key[0]]
            # Keep one of several identical curves (e.g. "worst" over a single attack).
            unique: dict[str, tuple] = {}
            for key, mine in groups.items():
                sig = json.dumps(sorted((r["run"], r[x_key], r["value"]) for r in mine))
                unique.setdefault(sig, (key, mine))
            panels = list(unique.values())
            combos = [c for c in self._facet_values(self.facets)
                      if any(all(r.get(f) == v for f, v in zip(self.facets, c)) for r in rows)]
            self.tables[f"eval-{name}.png"] = self._numbers(panels, combos, labels, x_key)
            total = len(panels) * len(combos)
            if total > MAX_PANELS:
                combos = combos[:max(1, MAX_PANELS // len(panels))]
                panels = panels[:MAX_PANELS // len(combos)]
            same_metric = len({key[0] for key, _ in panels}) == 1
            fig, axes = self._panels(len(panels) * len(combos), sharey=same_metric)
            i = 0
            for values in combos:
                for key, mine in panels:
                    ax = axes[i]
                    i += 1
                    sub = [r for r in mine if all(r.get(f) == v for f, v in zip(self.facets, values))]
                    self._lines(ax, sub, x_key)
                    ax.set_xlabel(nice(x_key))
                    if (i - 1) % 4 == 0 or not same_metric:
                        ax.set_ylabel(nice(key[0]))
                    title = " · ".join(v for v in key[1:] if v not in ("", "any", "none"))
                    if len(combos) > 1:
                        title += "\n" + self._facet_title(self.facets, values)
                    ax.set_title(title, fontsize=9)
            title = "Robustness" if x_key == "eps" else f"{name}: {nice(key[0])} against {x_key}"
            only = [f"{nice(f)} = {v}" for f, v in zip(self.facets, combos[0])] if len(combos) == 1 else []
            caption = (f"Evaluation '{name}': {nice(key[0])} against {nice(x_key)}, mean over seeds with a 95 % band"
                       + (f"; panel titles give {' · '.join(labels)}" if labels else "")
                       + (f"; runs with {', '.join(only)}" if only else "")
                       + (f" (showing {total if total <= MAX_PANELS else len(panels) * len(combos)} of {total} panels)"
                          if total > MAX_PANELS else "") + ".")
            out.append(self._finish(fig, axes, title, f"eval-{name}.png", caption))
        return out

    def _numbers(self, panels, combos, labels, x_key) -> tuple[list[str], list[list[str]]]:
        """Every curve as a table row: mean ± 95 % CI over seeds at each x (all panels, none capped)."""
        xs = sorted({r[x_key] for _, mine in panels for r in mine})
        hues = list(self.colors) if self.hue else [None]
        facets = self.facets if len(combos) > 1 else []  # a single facet value is in the caption
        headers = [" · ".join(labels) or "curve", *facets, *([self.hue] if self.hue else []),
                   *(f"{x:g}" for x in xs)]
        lines = []
        for key, mine in panels:
            for values in combos:
                for hue in hues:
                    sub = [r for r in mine if all(r.get(f) == v for f, v in zip(self.facets, values))
                           and (self.hue is None or r.get(self.hue) == hue)]
                    if not sub:
                        continue
                    at = {}
                    for r in sub:
                        at.setdefault(r[x_key], []).append(float(r["value"]))
                    cells = [format_stat((*mean_ci(at[x]), len(at[x])), 3) if x in at else "-" for x in xs]
                    name = " · ".join(v for v in key[1:] if v not in ("", "any", "none")) or key[0]
                    lines.append([name, *(map(str, values) if facets else []), *([str(hue)] if self.hue else []),
                                  *cells])
        return headers, lines


def build_figures(data: StudyData, folder: Path) -> list[tuple]:
    """Draw every figure the rows allow; returns (title, file name, caption, png bytes, numbers or None)."""
    plt = _pyplot()
    if plt is None or not data.rows:
        return []
    figs = Figures(data, plt)
    drawn = []
    for method in (figs.learning_curves, figs.sweeps, figs.evaluation_curves):
        for fig in method():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            plt.close(fig)
            drawn.append(buf.getvalue())
    out = []
    for (title, name, caption), png in zip(figs.figures, drawn):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / name, png)
        out.append((title, name, caption, png, figs.tables.get(name)))
    return out


# ---------------------------------------------------------------- writing

def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def write_tables(data: StudyData, table: SummaryTable) -> list[str]:
    path = data.path
    columns = data.columns
    written = ["results.csv", "results.jsonl", "runs.csv", "summary.csv"]
    atomic_write_text(path / "results.csv", _csv_text(columns, data.rows))
    atomic_write_text(path / "results.jsonl", "".join(json.dumps(r) + "\n" for r in data.rows))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        cols = {c: [_parquet_cell(r.get(c)) for r in data.rows] for c in columns}
        with atomic_path(path / "results.parquet") as tmp:
            pq.write_table(pa.table(cols), tmp)
        written.append("results.parquet")
    run_cols = ["id", *data.axis_names, "seed", "status", "error", "epochs", "train_images", "train_seconds",
                "seconds", "folder"]
    run_rows = [{**r, **r["cell"]} for r in data.runs]
    atomic_write_text(path / "runs.csv", _csv_text(run_cols, run_rows))
    stat_rows = []
    for line in table.cells:
        cell = dict(zip(data.axis_names, line))
        for key, stat in zip(table.keys, line[len(data.axis_names):]):
            if stat is not None:
                stat_rows.append({**cell, "evaluation": key[0], "metric": key[1],
                                  "where": "; ".join(f"{k}={v}" for k, v in key[2]), "mean": stat[0],
                                  "ci95": stat[1], "seeds": stat[2]})
    atomic_write_text(path / "summary.csv", _csv_text(
        [*data.axis_names, "evaluation", "metric", "where", "mean", "ci95", "seeds"], stat_rows))
    return written


def _parquet_cell(v):
    # Mixed types in one column (a number here, text there) become text so Arrow can store them.
    return None if v is None else str(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;margin:0;
color:#1d2330;background:#f6f7f9;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid #d9dde3}
.sub{color:#5a6372;margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:22px}.card span{color:#5a6372;font-size:13px}
.card.bad b{color:#b42318}
table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e8;font-size:13.5px;margin:8px 0}
th,td{padding:6px 12px;border-bottom:1px solid #eef0f3;text-align:left;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:700}
tr:last-child td{border-bottom:none}
figure{background:#fff;border:1px solid #e1e4e8;border-radius:8px;margin:14px 0;padding:12px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#5a6372;font-size:13px;margin-top:6px}
.err{color:#b42318;font-family:ui-monospace,Menlo,monospace;font-size:12.5px;white-space:normal}
code{background:#eef0f3;padding:1px 5px;border-radius:4px;font-size:12.5px}
.scroll{overflow-x:auto}
.muted{color:#5a6372;font-size:13px}
.pics{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.pics figure{margin:0}.pics.wide{grid-template-columns:1fr}
summary{cursor:pointer;color:#30394a;font-size:14px;margin:6px 0}
"""


def _html_table(headers, rows, numeric_from: int, best: list[int | None] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        tds = []
        for j, v in enumerate(row):
            cls = "num" if j >= numeric_from else ""
            if best and j >= numeric_from and best[j - numeric_from] == i:
                cls += " best"
            tds.append(f'<td class="{cls.strip()}">{html.escape(str(v))}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _best_rows(table: SummaryTable, n_axes: int) -> list[int | None]:
    """Per accuracy column, the row with the highest mean (losses of different label spaces do not compare)."""
    best = []
    for j, key in enumerate(table.keys):
        means = [(line[n_axes + j][0], i) for i, line in enumerate(table.cells) if line[n_axes + j] is not None]
        best.append(max(means)[1] if len(means) > 1 and "accuracy" in key[1] else None)
    return best


def _label_name(stats: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(stats.get("options", {}).items()))
    return stats["label"] + (f" ({options})" if options else "")


def _label_rows(data: StudyData) -> tuple[list[str], list[list]]:
    datasets = {s["dataset"] for s in data.labels.values()}
    headers = ["label", "shape", *(["dataset"] if len(datasets) > 1 else []), "entropy (bits)", "mean L1",
               "mean L2", "values"]
    rows = [[_label_name(s), "x".join(map(str, s["shape"])), *([s["dataset"]] if len(datasets) > 1 else []),
             f"{s['entropy']:.3f}", f"{s['l1']:.4f}", f"{s['l2']:.4f}", f"[{s['min']:.3g}, {s['max']:.3g}]"]
            for s in data.labels.values()]
    return headers, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pictures(data: StudyData, evaluation: str) -> list[dict]:
    mine = [im for im in data.images if im["evaluation"] == evaluation]
    first = min(im["cell"].get("seed", 0) for im in mine)
    return [im for im in mine if im["cell"].get("seed", 0) == first][:12]


def render(data: StudyData, table: SummaryTable, figures, files: list[str]) -> tuple[str, str]:
    """The HTML page and the markdown summary."""
    n_axes = len(data.axis_names)
    counts = {s: sum(r["status"] == s for r in data.runs) for s in ("done", "failed", "running", "pending")}
    seeds = sorted({r["cell"].get("seed") for r in data.runs if r["cell"].get("seed") is not None})
    text_rows = [[*line[:n_axes], *(format_stat(s) for s in line[n_axes:])] for line in table.cells]
    ci_note = (f"Mean ± 95 % confidence interval (Student t) over {len(seeds)} seeds; "
               "the best accuracy of each column is bold." if len(seeds) > 1 else
               "One seed per cell, so no confidence interval; the best accuracy of each column is bold.")
    grid = "; ".join(f"{a['name']}: {', '.join(map(str, a['values']))}" for a in data.axes) or "a single run"
    evals = ", ".join(e["name"] for e in data.evaluations) or "none (training numbers only)"

    h = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(data.name)} — labelrep study</title>"
         f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body><main>"]
    h.append(f"<h1>{html.escape(data.name)}</h1>")
    if data.description:
        h.append(f"<p class='sub'>{html.escape(data.description)}</p>")
    h.append("<div class='cards'>")
    h.append(f"<div class='card'><b>{len(data.runs)}</b><span>runs</span></div>")
    h.append(f"<div class='card'><b>{counts['done']}</b><span>done</span></div>")
    if counts["failed"]:
        h.append(f"<div class='card bad'><b>{counts['failed']}</b><span>failed</span></div>")
    if counts["running"] + counts["pending"]:
        h.append(f"<div class='card'><b>{counts['running'] + counts['pending']}</b><span>not finished</span></div>")
    h.append(f"<div class='card'><b>{len(seeds) or 1}</b><span>seeds per cell</span></div></div>")
    h.append(f"<p class='muted'><b>Grid</b>: {html.escape(grid)}. <b>Evaluations</b>: {html.escape(evals)}.</p>")

    h.append("<h2>Results</h2>")
    if table.cells:
        h.append(f"<p class='muted'>{ci_note}</p>")
        h.append(_html_table(table.headers, text_rows, n_axes, _best_rows(table, n_axes)))
    else:
        h.append("<p class='muted'>No run has finished yet.</p>")
    failed = [r for r in data.runs if r["status"] == FAILED]
    if failed:
        h.append("<h2>Failed runs</h2>")
        h.append(_html_table(["run", *data.axis_names, "seed", "error"],
                             [[r["id"], *(r["cell"].get(a) for a in data.axis_names), r["cell"].get("seed"),
                               r["error"] or ""] for r in failed], 99))
        h.append("<p class='muted'>The traceback is in <code>runs/&lt;run&gt;/error.txt</code>; "
                 "<code>labelrep study FILE --retry-failed</code> runs them again.</p>")
    for title, name, caption, png, numbers in figures:
        h.append(f"<h2>{html.escape(title)}</h2><figure><img alt='{html.escape(title)}' "
                 f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                 f"<figcaption>{html.escape(caption)}</figcaption>")
        if numbers:
            first_number = len(numbers[0]) - len(numbers[1][0]) + sum(
                1 for hd in numbers[0] if not _is_number(hd))  # the x columns come last
            h.append("<details><summary>The numbers (mean ± 95 % CI over seeds)</summary>"
                     + _html_table(numbers[0], numbers[1], first_number) + "</details>")
        h.append("</figure>")
    if data.labels:
        h.append("<h2>Label statistics</h2><p class='muted'>Of each label table the runs trained on: Shannon entropy "
                 "(bits, of each class label's histogram of values, mean over classes) and the mean entrywise L1 and L2 "
                 "distances between class labels after min-max scaling the table to [0, 1] (per entry, so sizes "
                 "compare).</p>")
        headers, rows = _label_rows(data)
        h.append(_html_table(headers, rows, headers.index("entropy (bits)")))
        pictures = [s for s in data.labels.values() if s.get("png")]
        if pictures:
            h.append("<div class='pics wide'>")
            for st in pictures:
                h.append(f"<figure><img alt='{html.escape(st['label'])} labels' "
                         f"src='data:image/png;base64,{base64.b64encode(st['png']).decode()}'>"
                         f"<figcaption>{html.escape(_label_name(st))}</figcaption></figure>")
            h.append("</div>")
    for name in dict.fromkeys(im["evaluation"] for im in data.images):
        shown = _pictures(data, name)
        h.append(f"<h2>Figures of evaluation '{html.escape(name)}'</h2>")
        h.append(f"<p class='muted'>As the evaluation drew them, one per run (seed {shown[0]['cell'].get('seed')}"
                 f"{', the first 12 runs' if len(shown) == 12 else ''}).</p><div class='pics'>")
        for im in shown:
            cell = ", ".join(f"{k} = {v}" for k, v in im["cell"].items() if k != "seed")
            h.append(f"<figure><img alt='{html.escape(name)} {html.escape(cell)}' "
                     f"src='data:image/png;base64,{base64.b64encode(im['png']).decode()}'>"
                     f"<figcaption>{html.escape(cell or im['run'])}</figcaption></figure>")
        h.append("</div>")
    h.append(f"<h2>Runs</h2><details><summary>{len(data.runs)} runs: cell, status, size and time of each "
             "(click to open)</summary>")
    run_rows = [[r["id"], *(r["cell"].get(a) for a in data.axis_names), r["cell"].get("seed"), r["status"],
                 r["epochs"] if r["epochs"] is not None else "-",
                 r["train_images"] if r["train_images"] is not None else "-",
                 f"{r['train_seconds']:.1f}" if r.get("train_seconds") is not None else "-",
                 f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"] for r in data.runs]
    h.append(_html_table(["run", *data.axis_names, "seed", "status", "epochs", "train images", "training s",
                          "last attempt s"],
                         run_rows, n_axes + 4))
    h.append("</details>")
    h.append(f"<p class='muted'>Files beside this page: {', '.join(f'<code>{f}</code>' for f in files)}; "
             "each run's folder is <code>runs/&lt;run&gt;</code> (its id is a hash of its resolved config). "
             "Rebuild this page with <code>labelrep report &lt;folder&gt;</code>.</p>")
    h.append("</main></body></html>")

    md = [f"# {data.name}", ""]
    if data.description:
        md += [data.description, ""]
    md += [f"{len(data.runs)} runs: {counts['done']} done, {counts['failed']} failed, "
           f"{counts['running'] + counts['pending']} not finished. Grid: {grid}. Evaluations: {evals}.", ""]
    if table.cells:
        md += [ci_note.replace("; the best accuracy of each column is bold", "").rstrip(".") + ".", ""]
        md.append("| " + " | ".join(table.headers) + " |")
        md.append("|" + "|".join("---" if j < n_axes else "---:" for j in range(len(table.headers))) + "|")
        md += ["| " + " | ".join(map(str, row)) + " |" for row in text_rows]
        md.append("")
    for title, name, caption, _, numbers in figures:
        md += [f"## {title}", "", f"![{title}](figures/{name})", "", caption, ""]
        if numbers:
            md += ["| " + " | ".join(numbers[0]) + " |", "|" + "---|" * len(numbers[0])]
            md += ["| " + " | ".join(row) + " |" for row in numbers[1]] + [""]
    if data.labels:
        headers, rows = _label_rows(data)
        md += ["## Label statistics", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
    for name in dict.fromkeys(im["evaluation"] for im in data.images):
        md += [f"## Figures of evaluation '{name}'", ""]
        for im in _pictures(data, name):
            cell = ", ".join(f"{k} = {v}" for k, v in im["cell"].items() if k != "seed")
            md += [f"![{cell}]({im['file']})", ""]
    if failed:
        md += ["## Failed runs", ""]
        md += [f"- `{r['id']}` ({', '.join(f'{k}={v}' for k, v in r['cell'].items())}): {r['error']}" for r in failed]
        md.append("")
    return "".join(h), "\n".join(md)


@dataclass
class Report:
    data: StudyData
    table: SummaryTable
    files: list[str]


def write_report(path: str | Path) -> Report:
    """Collect a study (or run) folder and write its tables, figures, HTML page and markdown summary."""
    data = collect(path)
    table = summary_table(data)
    files = write_tables(data, table)
    figures = build_figures(data, data.path / "figures")
    files += ["report.md"] + [f"figures/{f[1]}" for f in figures]
    page, md = render(data, table, figures, files)
    atomic_write_text(data.path / "report.html", page)
    atomic_write_text(data.path / "report.md", md + "\n")
    return Report(data, table, ["report.html", *files])
