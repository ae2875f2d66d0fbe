"""Collecting a study folder (or one run folder) from disk into tidy rows.

One row per run and number: ``run, <axes...>, seed, evaluation, metric, value`` plus whatever keys
locate the number (``epoch``, ``eps``, ``protocol``...). Training numbers come as evaluation
``training`` (the summary) and ``history`` (per epoch); each evaluation's rows as its name (or its
key, when a study lists it twice). No timings: two studies of the same grid give equal tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .runner import DONE, EVAL_DIR, FAILED, LABELS_FILE, PLAN_FILE, read_status

HISTORY_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy", "train_loss", "lr")
TRAINING_METRICS = ("test_accuracy", "final_train_loss", "best_val_accuracy", "test_accuracy_at_best_val")


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
    kinds: dict = field(default_factory=dict)         # evaluation as the rows name it -> registered name

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
            data.kinds[label] = ev["name"]
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
