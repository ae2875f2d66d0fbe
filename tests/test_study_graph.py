"""Runs that depend on runs, and evaluations that watch training, on the digits set with tiny fastnets:
generations R1 -> R2 through a teacher target (resumed after SIGKILL, in parallel), a failed parent
skipping its child, bad references refused, feature snapshots at 10/50/100 % kept across a resume."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelrep.cli import main
from labelrep.errors import UserError
from labelrep.study import load_study, parse_study, run_study

from study_helpers import study_killed_in

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu", "epochs": 2}}


def teacher(generation: str) -> dict:
    return {"target": {"name": "teacher", "options": {"run": {"study_run": {"generation": generation}}}}}


GENERATIONS = {"generation": {"R1": {}, "R2": teacher("R1")}}


def write(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({"name": path.stem, "base": TINY, "seeds": 1, **fields}, sort_keys=False))
    return path


def status(out: Path, run_id: str) -> dict:
    return json.loads((out / "runs" / run_id / "status.json").read_text())


def results(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("axes, message", [
    ({"generation": {"R1": teacher("R1")}}, "names the run itself"),
    ({"generation": {"R1": teacher("R2"), "R2": teacher("R1")}}, "cycle"),
    ({"generation": {"R1": {}, "R2": {"target": {"name": "teacher", "options": {
        "run": {"study_run": {"gen": "R1"}}}}}}}, "names axis 'gen', which the study does not have"),
    ({"generation": {"R1": {}, "R2": teacher("R9")}}, "generation='R9', not a value of that axis"),
    ({"generation": {"R1": {}, "R2": {"target": {"name": "teacher", "options": {
        "run": {"study_run": {"generation": "R1", "seed": 7}}}}}}}, "seed 7, not one of the seeds"),
])
def test_bad_references_are_refused_when_parsed(axes, message):
    with pytest.raises(UserError, match=message):
        parse_study({"base": TINY, "axes": axes})


def test_reference_to_an_excluded_run_is_refused():
    with pytest.raises(UserError, match="which the study does not have"):
        parse_study({"base": TINY, "axes": GENERATIONS, "exclude": [{"generation": "R1"}]})


def test_child_identity_hashes_the_parent_id():
    study = parse_study({"base": TINY, "axes": GENERATIONS, "seeds": 2})
    r1, r1b, r2, r2b = study.runs
    assert r2.parents == [r1.id] and r2b.parents == [r1b.id]  # the same seed's parent
    assert r2.config["target"]["options"]["run"] == {"study_run": r1.id}
    folder = r2.config_in(lambda run: f"/studies/x/runs/{run}")
    assert folder["target"]["options"]["run"] == f"/studies/x/runs/{r1.id}"
    other = parse_study({"base": {**TINY, "optim": {"batch_size": 32}}, "axes": GENERATIONS, "seeds": 2})
    assert other.runs[2].id != r2.id  # another parent, another child


def test_failed_parent_skips_its_child_with_the_reason(tmp_path, capsys):
    file = write(tmp_path / "fail.yaml", axes=GENERATIONS, evaluations=["accuracy"])
    r1, r2 = load_study(file).runs
    out = tmp_path / "out"
    parent = out / "runs" / r1.id
    parent.mkdir(parents=True)
    (parent / "checkpoint.pt").write_bytes(b"not a checkpoint")  # a broken resume: the parent fails
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 1
    assert status(out, r1.id)["status"] == "failed"
    child = status(out, r2.id)
    assert child["status"] == "skipped" and child["error"].startswith(f"parent run {r1.id} (generation=R1, seed=0) failed")
    assert not (out / "runs" / r2.id / "config.yaml").exists()  # it never started
    assert "skipped (parent run" in capsys.readouterr().out
    assert "skipped" in (out / "runs.csv").read_text()

    # Again without --retry-failed: the parent stays failed, the child skipped.
    assert main(["study", str(file), "--out", str(out), "--quiet"]) == 1
    assert status(out, r2.id)["status"] == "skipped"
    (parent / "checkpoint.pt").unlink()
    assert main(["study", str(file), "--out", str(out), "--quiet", "--retry-failed"]) == 0
    assert status(out, r1.id)["status"] == "done" and status(out, r2.id)["status"] == "done"
    config = yaml.safe_load((out / "runs" / r2.id / "config.yaml").read_text())
    assert config["target"]["options"]["run"] == str(parent.resolve())


def test_two_generations_resume_after_sigkill_in_the_child(tmp_path):
    base = {**TINY, "train": {"device": "cpu", "epochs": 4}}
    file = write(tmp_path / "gen.yaml", base=base, axes=GENERATIONS, evaluations=["accuracy"])
    r1, r2 = load_study(file).runs
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    child = killed / "runs" / r2.id
    epochs_at_kill = study_killed_in(child, ["study", str(file), "--out", str(killed), "--quiet", "--threads", "1"])
    assert 2 <= epochs_at_kill < 4 and status(killed, r1.id)["status"] == "done"

    assert main(["study", str(file), "--out", str(killed), "--quiet", "--threads", "1"]) == 0
    assert status(killed, r1.id)["attempts"] == 1 and status(killed, r2.id)["attempts"] == 2
    assert main(["study", str(file), "--out", str(reference), "--quiet", "--threads", "1"]) == 0
    table = (killed / "results.csv").read_text()
    assert table == (reference / "results.csv").read_text()
    acc = {r["generation"]: r["value"] for r in results(killed) if r["evaluation"] == "accuracy"}
    assert acc["R2"] != acc["R1"] and acc["R2"] > 0.5  # the student learnt from its teacher


def test_dependency_order_with_two_jobs(tmp_path):
    axes = {"generation": {"R1": {}, "R2": teacher("R1"), "R3": {"target": {"name": "teacher", "options": {
        "run": {"study_run": {"generation": "R2"}}}}}}}
    file = write(tmp_path / "par.yaml", base={**TINY, "train": {"device": "cpu", "epochs": 1}}, axes=axes,
                 seeds=[0, 1], evaluations=["accuracy"])
    study = load_study(file)
    out = tmp_path / "out"
    assert main(["study", str(file), "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    by_cell = {(r.cell["generation"], r.cell["seed"]): out / "runs" / r.id for r in study.runs}
    for seed in (0, 1):
        for parent, child in (("R1", "R2"), ("R2", "R3")):
            # a child starts (writes its config) only after its parent has finished
            assert (by_cell[(parent, seed)] / "summary.json").stat().st_mtime_ns <= \
                   (by_cell[(child, seed)] / "config.yaml").stat().st_mtime_ns
    pids = {status(out, r.id)["pid"] for r in study.runs}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers were used
    plan = json.loads((out / "plan.json").read_text())
    assert [r.get("parents", []) for r in plan["runs"]] == [r.parents for r in study.runs]


class StopAt:
    """A training hook that stops the run after an epoch (a crash mid-training)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_start(self, *args): ...
    def on_step(self, epoch, step): ...
    def on_end(self, summary): ...

    def on_epoch(self, record):
        if record["epoch"] == self.epoch:
            raise RuntimeError("stopped on purpose")


def test_feature_snapshots_from_a_study_survive_a_resume(tmp_path):
    features = {"name": "features", "options": {"fractions": [0.1, 0.5, 1.0], "images": 100}}
    study = parse_study({"name": "snap", "base": {**TINY, "train": {"device": "cpu", "epochs": 4}},
                         "evaluations": [features, {"monitor": {"images": 50}}]})
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    outcome = run_study(study, cut, hooks_factory=lambda run: StopAt(3))  # snapshots at 10 % and 50 % taken
    (run,) = study.runs
    assert outcome.statuses[run.id]["status"] == "failed"
    watch = cut / "runs" / run.id / "watch" / study.evaluations[0].key / "features.npz"
    with np.load(watch) as z:
        assert z["fractions"].tolist() == [0.1, 0.5]
    assert run_study(study, cut, retry_failed=True).statuses[run.id]["status"] == "done"
    assert run_study(study, whole).statuses[run.id]["status"] == "done"
    with np.load(watch) as a, np.load(str(watch).replace(str(cut), str(whole))) as b:
        assert a["fractions"].tolist() == [0.1, 0.5, 1.0] and a["steps"].tolist() == b["steps"].tolist()
        assert np.array_equal(a["features"], b["features"])  # kept across the resume, not retaken or lost
    from labelrep.study import write_report

    rows = write_report(cut).data.rows
    knn = {r["fraction"]: r["value"] for r in rows if r["metric"] == "knn_accuracy"}
    assert sorted(knn) == [0.1, 0.5, 1.0] and knn[1.0] > knn[0.1]
    monitor = [r for r in rows if r["metric"] == "monitor_accuracy"]
    assert [r["epoch"] for r in monitor] == [1, 2, 3, 4] and all(r["images"] == 50 for r in monitor)
    assert rows == write_report(whole).data.rows  # the same numbers, cut or not
    assert (cut / "figures" / "eval-features.png").is_file() and (cut / "figures" / "eval-monitor.png").is_file()
