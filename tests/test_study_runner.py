"""The study runner: a study killed (SIGKILL) mid-run and rerun gives the table of an uninterrupted one;
a failed run is recorded and does not stop the others; parallel workers; new evaluations only."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from labelrep.cli import main
from labelrep.study import load_study

from study_helpers import study_killed_in


pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu"}}


def write_study(path: Path, **fields) -> Path:
    data = {"name": path.stem, "base": TINY, "seeds": 1, "evaluations": ["accuracy"], **fields}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def statuses(out: Path) -> list[dict]:
    plan = json.loads((out / "plan.json").read_text())
    return [json.loads((out / r["folder"] / "status.json").read_text()) if (out / r["folder"] / "status.json").is_file()
            else {"status": "pending"} for r in plan["runs"]]


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path):
    file = write_study(tmp_path / "kill.yaml", base={**TINY, "train": {"device": "cpu", "epochs": 10}},
                       axes={"label": {"onehot": {"label.name": "categorical"},
                                       "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.2}}}}})
    runs = load_study(file).runs
    killed_dir, reference = tmp_path / "killed", tmp_path / "reference"
    second = killed_dir / "runs" / runs[1].id
    # Kill -9 once the second run is part-way through (two epochs written, not finished).
    epochs_at_kill = study_killed_in(second, ["study", str(file), "--out", str(killed_dir), "--quiet"])
    assert 2 <= epochs_at_kill < 10
    before = statuses(killed_dir)
    assert before[0]["status"] == "done" and before[1]["status"] == "running"
    assert (second / "checkpoint.pt").is_file() and not (second / "summary.json").exists()

    assert main(["study", str(file), "--out", str(killed_dir), "--quiet"]) == 0
    after = statuses(killed_dir)
    assert [s["status"] for s in after] == ["done", "done"]
    assert after[0]["attempts"] == 1  # the finished run was skipped, not redone
    assert after[1]["attempts"] == 2  # the cut-off run was resumed ...
    history = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 11))  # ... keeping the epochs it had

    assert main(["study", str(file), "--out", str(reference), "--quiet"]) == 0
    killed_table = (killed_dir / "results.csv").read_text()
    assert killed_table == (reference / "results.csv").read_text()
    assert killed_table.count("\n") == 1 + 2 * (2 + 10 * 4 + 1)  # header; per run: 2 final, 4 per epoch, accuracy


def test_failed_run_among_good_ones(tmp_path, capsys):
    base = {**TINY, "label": {"name": "smoothed"}, "train": {"device": "cpu", "epochs": 2}}
    file = write_study(tmp_path / "fail.yaml", base=base, axes={"label.options.alpha": [0.1, 1.5, 0.3]})
    out = tmp_path / "out"
    assert main(["study", str(file), "--out", str(out), "--quiet", "--threads", "1"]) == 1
    printed = capsys.readouterr().out
    assert "smoothing alpha must lie in [0, 1), got 1.5" in printed
    s = statuses(out)
    assert [x["status"] for x in s] == ["done", "failed", "done"]
    assert s[1]["error"].startswith("UserError: smoothing alpha")
    failed_id = load_study(file).runs[1].id
    assert "Traceback" in (out / "runs" / failed_id / "error.txt").read_text()
    table = (out / "results.csv").read_text()
    assert failed_id not in table and table.count("\n") > 10
    with open(out / "runs.csv") as f:
        listed = {r["id"]: r for r in csv.DictReader(f)}
    assert listed[failed_id]["status"] == "failed" and listed[failed_id]["label.options.alpha"] == "1.5"
    assert listed[failed_id]["error"].startswith("UserError: smoothing alpha")
    page = (out / "report.html").read_text()
    assert "Failed runs" in page and "smoothing alpha must lie in [0, 1)" in page

    # Rerun: the failure is kept (and reported), not retried; --retry-failed runs it again.
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 1
    assert statuses(out)[1]["attempts"] == 1
    assert main(["study", str(file), "--out", str(out), "--quiet", "--retry-failed"]) == 1
    s = statuses(out)
    assert s[1]["attempts"] == 2 and s[0]["attempts"] == 1 and s[2]["attempts"] == 1


def test_parallel_jobs_run_in_worker_processes(tmp_path):
    file = write_study(tmp_path / "par.yaml", base={**TINY, "train": {"device": "cpu", "epochs": 1}},
                       axes={"data.fraction": [0.5, 1.0]}, seeds=[0, 1])  # 4 runs on 2 workers
    out = tmp_path / "out"
    assert main(["study", str(file), "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    s = statuses(out)
    assert [x["status"] for x in s] == ["done"] * 4
    pids = {x["pid"] for x in s}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    accs = [r["value"] for r in rows if r["evaluation"] == "accuracy"]
    assert len(accs) == 4 and all(0.0 <= a <= 1.0 for a in accs)
    if max(1, (os.cpu_count() or 1) // 2) == torch.get_num_threads():  # workers computed with as many threads
        assert main(["study", str(file), "--out", str(tmp_path / "serial"), "--quiet"]) == 0
        assert (tmp_path / "serial" / "results.csv").read_text() == (out / "results.csv").read_text()


def test_new_evaluation_on_a_finished_study_does_not_retrain(tmp_path):
    file = write_study(tmp_path / "ev.yaml", base={**TINY, "train": {"device": "cpu", "epochs": 2}})
    out = tmp_path / "out"
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 0
    run_dir = out / "runs" / load_study(file).runs[0].id
    stamp = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    write_study(file, base={**TINY, "train": {"device": "cpu", "epochs": 2}},
                evaluations=["accuracy", {"robustness": {"attacks": ["fgsm"], "protocols": ["paper"],
                                                         "eps": [4, 16], "max_images": 100}}])
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 0
    assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == stamp
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    attacked = {r["eps"]: r["value"] for r in rows if r["evaluation"] == "robustness" and r.get("attack") == "fgsm"}
    assert sorted(attacked) == [4.0, 16.0] and attacked[16.0] <= attacked[4.0]
