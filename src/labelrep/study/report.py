"""A study's report, rebuilt from what is on disk: tidy tables, figures, an HTML page, a markdown summary.

Four parts, one module each: ``collect`` (run folders -> tidy rows), ``tables`` (mean and 95 % CI
over seeds, ``results.csv`` / ``results.jsonl`` / ``results.parquet``, ``runs.csv``, ``summary.csv``),
``figures`` (learning curves, sweeps over numeric axes, each evaluation's curves as its registered
``Drawing`` says, with the numbers behind them and its other metrics as notes) and ``page``
(``report.html``, self-contained, and ``report.md``). The report names no evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..evaluate.figures import format_stat, mean_ci
from ..files import atomic_write_text
from .collect import StudyData, collect
from .figures import build_figures
from .page import render
from .tables import SummaryTable, summary_table, write_tables

__all__ = ["Report", "StudyData", "collect", "format_stat", "mean_ci", "summary_table", "write_report"]


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
    files += ["report.md"] + [f"figures/{f.name}" for f in figures]
    page, md = render(data, table, figures, files)
    atomic_write_text(data.path / "report.html", page)
    atomic_write_text(data.path / "report.md", md + "\n")
    return Report(data, table, ["report.html", *files])
