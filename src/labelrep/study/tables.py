"""Statistics and tables of a study's rows: mean and 95 % CI over seeds per cell, and the files
``results.csv`` / ``results.jsonl`` (``results.parquet`` with pyarrow), ``runs.csv``, ``summary.csv``."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from ..evaluate.figures import BASE_KEYS, curve_axis, format_stat, mean_ci, nice, numeric as _numeric
from ..evaluate.registry import drawing
from ..files import atomic_path, atomic_write_text
from .collect import StudyData

__all__ = ["SummaryTable", "format_stat", "mean_ci", "summary_table", "write_tables"]


def drawing_of(data: StudyData, evaluation: str):
    return drawing(data.kinds.get(evaluation, evaluation))


def is_curve(data: StudyData, evaluation: str, rows: list[dict], base: set) -> bool:
    """Rows drawn as curves (or as notes beside them) rather than tabulated one number per run."""
    d = drawing_of(data, evaluation)
    drawn = [r for r in rows if not d.curves or r["metric"] in d.curves]
    return curve_axis(drawn, base, d) is not None


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
        if ev != "training" and is_curve(data, ev, rows, base):
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
