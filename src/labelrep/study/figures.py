"""The report's figures, drawn with ``evaluate.figures`` (the functions the CLI commands use too).

The first non-numeric axis with several values colours the lines; the other axes split panels.
What is drawn follows the rows: learning curves (``history``), sweeps of one-number-per-run metrics
over each numeric axis (``data.fraction`` gives data efficiency), and every evaluation whose rows
vary along its declared ``x`` (its ``Drawing``).
"""
from __future__ import annotations

from pathlib import Path

from ..evaluate.figures import (BASE_KEYS, MAX_PANELS, Figure, colors_for, curves, evaluation_figure, facet_title,
                                legend, matching, nice, numeric, panel_grid, png_bytes, pyplot)
from ..files import atomic_write_bytes
from .collect import StudyData
from .tables import HEADLINE, _matches, column_name, drawing_of, summary_table


class Figures:
    def __init__(self, data: StudyData, plt):
        self.data, self.plt = data, plt
        self.numeric_axes = [a["name"] for a in data.axes
                             if len(a["values"]) > 1 and all(numeric(v) for v in a["values"])]
        multi = [a["name"] for a in data.axes if len(a["values"]) > 1]
        categorical = [a for a in multi if a not in self.numeric_axes]
        self.hue = categorical[0] if categorical else None
        self.facets = [a for a in multi if a != self.hue]
        self.hue_values = next((a["values"] for a in data.axes if a["name"] == self.hue), [None])
        self.colors = colors_for(self.hue_values)

    def _facet_values(self, facets: list[str]) -> list[tuple]:
        return list(dict.fromkeys(tuple(run["cell"].get(f) for f in facets) for run in self.data.runs))

    def _present(self, facets: list[str], rows: list[dict]) -> list[tuple]:
        return [c for c in self._facet_values(facets) if matching(rows, facets, c)]

    def _figure(self, fig, axes, title: str, name: str, caption: str) -> Figure:
        legend(fig, axes, nice(self.hue) if self.hue else None)
        return Figure(title, name, caption, png_bytes(fig))

    def learning_curves(self) -> list[Figure]:
        """One row of panels per metric (test accuracy, training loss), one column per facet."""
        rows = [r for r in self.data.rows if r["evaluation"] == "history"]
        metrics = [m for m in ("test_accuracy", "train_loss") if any(r["metric"] == m for r in rows)]
        if not metrics:
            return []
        every = self._present(self.facets, rows)  # cells with finished runs only
        combos = every[:6]
        cols = len(combos)
        fig, grid = self.plt.subplots(len(metrics), cols, figsize=(min(3.4 * cols, 17) + 0.6, 2.6 * len(metrics) + 0.9),
                                      squeeze=False, sharey="row", layout="constrained")
        from matplotlib.ticker import MaxNLocator

        for i, metric in enumerate(metrics):
            for j, values in enumerate(combos):
                ax = grid[i][j]
                curves(ax, matching([r for r in rows if r["metric"] == metric], self.facets, values), "epoch",
                       self.hue, self.colors)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if "loss" in metric and all(r["value"] > 0 for r in rows if r["metric"] == metric):
                    ax.set_yscale("log")  # cross-entropy and Huber losses differ by orders of magnitude
                if i == len(metrics) - 1:
                    ax.set_xlabel("epoch")
                if j == 0:
                    ax.set_ylabel(nice(metric))
                if i == 0 and self.facets:
                    ax.set_title(facet_title(self.facets, values))
        shown = "" if len(combos) == len(every) else f" (the first {len(combos)} of {len(every)} panels)"
        axes = [ax for row in grid for ax in row]
        return [self._figure(fig, axes, "Learning curves", "learning-curves.png",
                             "Test accuracy and training loss per epoch, mean over seeds with a 95 % band"
                             f"{shown}.")]

    def sweeps(self) -> list[Figure]:
        """Scalar metrics against each numeric axis (data.fraction gives the data-efficiency curve)."""
        out = []
        keys = summary_table(self.data).keys  # sorted, duplicates left out
        scalars = [k for k in keys if k[0] != "training" or k == HEADLINE][:4]
        for axis in self.numeric_axes:
            others = [f for f in self.facets if f != axis]
            present = self._present(others, self.data.rows)
            combos = present[:max(1, MAX_PANELS // len(scalars))] if others else [()]
            fig, axes = panel_grid(self.plt, len(combos) * len(scalars))
            i = 0
            for values in combos:
                for key in scalars:
                    ax = axes[i]
                    i += 1
                    mine = matching([r for r in self.data.rows if _matches(r, key)], others, values)
                    curves(ax, mine, axis, self.hue, self.colors, log_x="fraction" in axis)
                    ax.set_xlabel(nice(axis))
                    ax.set_ylabel(column_name(key, scalars))
                    if others:
                        ax.set_title(facet_title(others, values))
            is_fraction = "fraction" in axis
            title = "Data efficiency" if is_fraction else f"Sweep over {axis}"
            caption = ("Test accuracy against the fraction of the training set used (log scale)"
                       if is_fraction else f"Final numbers against {axis}") + ", mean over seeds with a 95 % band."
            out.append(self._figure(fig, axes, title, f"sweep-{axis.replace('.', '-')}.png", caption))
        return out

    def evaluation_curves(self) -> list[Figure]:
        """Each evaluation whose rows vary along its x, as its Drawing says."""
        out = []
        by_eval: dict[str, list[dict]] = {}
        for r in self.data.rows:
            if r["evaluation"] not in ("history", "training"):
                by_eval.setdefault(r["evaluation"], []).append(r)
        base = {*BASE_KEYS, *self.data.axis_names}
        for name, rows in by_eval.items():
            fig = evaluation_figure(rows, drawing_of(self.data, name), name, base=base, hue=self.hue,
                                    hue_values=self.hue_values if self.hue else None, facets=self.facets,
                                    facet_values=self._facet_values(self.facets))
            if fig is not None:
                out.append(fig)
        return out


def build_figures(data: StudyData, folder: Path) -> list[Figure]:
    """Draw every figure the rows allow into ``folder``; none without matplotlib."""
    plt = pyplot(required=False)
    if plt is None or not data.rows:
        return []
    figs = Figures(data, plt)
    out = [f for method in (figs.learning_curves, figs.sweeps, figs.evaluation_curves) for f in method()]
    for f in out:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f.name, f.png)
    return out
