"""The study report: tidy tables, mean +- 95 % CI over seeds, figures embedded in one HTML page,
rebuilt from disk by ``labelrep report``; the dry run lists runs with a cost."""
from __future__ import annotations

import csv
import json
import math
import re

import pytest
import yaml

from labelrep.cli import main
from labelrep.study.report import collect, mean_ci

BASE = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu", "epochs": 2}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    file = root / "grid.yaml"
    file.write_text(yaml.safe_dump({
        "name": "grid", "description": "two labels, two fractions, two seeds", "base": BASE,
        "axes": {"label": {"onehot": {"label.name": "categorical"},
                           "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.2}}}},
                 "data.fraction": [0.5, 1.0]},
        "seeds": 2,
        "evaluations": ["accuracy", {"name": "robustness", "where": {"data.fraction": 1.0},
                                     "options": {"attacks": ["fgsm"], "protocols": ["paper"], "eps": [4, 16],
                                                 "max_images": 100}},
                        {"name": "features", "where": {"data.fraction": 1.0}, "options": {"images": 100, "figure": True}},
                        {"name": "calibration", "where": {"data.fraction": 1.0}}],
    }, sort_keys=False))
    out = root / "out"
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 0
    return out


def test_mean_ci_is_the_student_t_interval():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean_ci([0.5]) == (0.5, None)


def test_tidy_table_and_summary_over_seeds(study_dir):
    with open(study_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:8] == ["run", "label", "data.fraction", "seed", "evaluation", "metric", "value", "attack"]
    assert not any("seconds" in r["metric"] for r in rows)  # timings stay out of the compared table
    final = [r for r in rows if r["evaluation"] == "training" and r["metric"] == "test_accuracy"]
    assert len(final) == 8
    attacked = [r for r in rows if r["evaluation"] == "robustness"]
    assert {r["data.fraction"] for r in attacked} == {"1.0"} and {r["eps"] for r in attacked} == {"0.0", "4.0", "16.0"}
    # summary.csv: mean and CI of the two seeds of each cell, recomputed here from the tidy rows.
    with open(study_dir / "summary.csv") as f:
        summary = [r for r in csv.DictReader(f) if r["metric"] == "test_accuracy" and r["evaluation"] == "training"]
    assert len(summary) == 4
    for s in summary:
        values = [float(r["value"]) for r in final if r["label"] == s["label"] and r["data.fraction"] == s["data.fraction"]]
        mean, half = mean_ci(values)
        assert float(s["mean"]) == pytest.approx(mean) and float(s["ci95"]) == pytest.approx(half)
        assert s["seeds"] == "2"
    jsonl = [json.loads(x) for x in (study_dir / "results.jsonl").read_text().splitlines()]
    assert len(jsonl) == len(rows)
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(study_dir / "results.parquet").num_rows == len(rows)


def test_html_page_is_self_contained_with_the_figures(study_dir):
    page = (study_dir / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,", page)
    figures = sorted(p.name for p in (study_dir / "figures").glob("*.png"))
    # features watches training (snapshots at 10..100 %): its numbers are curves over the fraction
    assert figures == ["eval-features.png", "eval-robustness.png", "learning-curves.png", "sweep-data-fraction.png"]
    assert len(images) == len(figures) + 2 + 2  # and two t-SNE pictures (features), two label tables
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page)
    for heading in ("Results", "Learning curves", "Data efficiency", "Robustness", "Runs", "Label statistics",
                    "Figures of evaluation 'features'"):
        assert f">{heading}" in page
    assert len(re.findall(r"<figcaption>label = (onehot|smooth), data.fraction = 1.0</figcaption>", page)) == 2
    # Numbers with one value per run (and per text key) become columns of the results table.
    for column in ("ece (temperature 1)", "ece (temperature fitted)"):
        assert f"<th>{column}</th>" in page
    assert "<th>silhouette</th>" not in page and "| curve | label | 0.1 | 0.3 | 0.5 | 0.7 | 1 |" in \
        (study_dir / "report.md").read_text()
    assert "Failed runs" not in page
    # One-hot rows differ in 2 of 10 entries: mean L1 per entry 0.2, L2 sqrt(2 / 10).
    assert "<td class=\"\">categorical</td><td class=\"\">10</td><td class=\"num\">0.469</td>" \
           "<td class=\"num\">0.2000</td><td class=\"num\">0.4472</td>" in page
    assert len(list((study_dir / "labels").glob("*.png"))) == 2
    md = (study_dir / "report.md").read_text()
    assert "| label | data.fraction | test accuracy |" in md and "![Robustness](figures/eval-robustness.png)" in md
    assert re.search(r"\| onehot \| 1\.0 \| 0\.\d{4} ± 0\.\d{4} \|", md)
    # The robustness curves' numbers: clean (eps 0) and two budgets, per label, mean ± CI of two seeds.
    assert "| protocol · attack · loss | label | 0 | 4 | 16 |" in md
    assert re.search(r"\| paper · fgsm · train \| smooth (\| [01]\.\d{3} ± \d+\.\d{3} ){3}\|\n", md)


def test_report_command_rebuilds_the_same_tables(study_dir, capsys):
    before = (study_dir / "results.csv").read_text()
    (study_dir / "results.csv").unlink()
    (study_dir / "report.html").unlink()
    assert main(["report", str(study_dir)]) == 0
    assert (study_dir / "results.csv").read_text() == before and (study_dir / "report.html").is_file()
    out = capsys.readouterr().out
    assert "onehot" in out and "±" in out


def test_report_of_a_single_run_folder(study_dir):
    run = sorted((study_dir / "runs").iterdir())[0]
    data = collect(run)
    assert len(data.runs) == 1 and data.runs[0]["status"] == "done"
    assert {r["evaluation"] for r in data.rows} >= {"training", "history", "accuracy"}
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()


def test_report_of_a_folder_that_is_neither_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a study folder" in capsys.readouterr().err


def test_dry_run_lists_runs_with_their_cost(tmp_path, capsys):
    file = tmp_path / "dry.yaml"
    file.write_text(yaml.safe_dump({"base": BASE, "axes": {"data.fraction": [0.5, 1.0]}, "seeds": 1}, sort_keys=False))
    assert main(["study", str(file), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "pending" in out and "about" in out and "2 to run" in out
    assert re.search(r"0\.5\s+0\s+pending\s+2\s+673\s+20", out)  # 673 images, 10 steps x 2 epochs
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
