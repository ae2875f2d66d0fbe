"""The Ray backend on a Ray instance this module starts (``ray.init(num_cpus=2)``): a tiny study with
runs that depend on runs gives the local backend's results.csv byte for byte, and a worker killed
with SIGKILL mid-run is retried, resumes from its checkpoint, and loses or repeats nothing."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from labelrep.study import load_study, run_study, write_report

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 4
BASE = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu", "epochs": EPOCHS}}


def teacher(generation: str) -> dict:
    return {"target": {"name": "teacher", "options": {"run": {"study_run": {"generation": generation}}}}}


def write_study(path: Path) -> Path:
    """Four runs: two first generations, each the teacher of a second one."""
    path.write_text(yaml.safe_dump({
        "name": "scale", "base": BASE, "seeds": 1, "evaluations": ["accuracy"],
        "resources": {"cpus_per_run": 1},
        "axes": {"label": {"onehot": {"label.name": "categorical"},
                           "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.2}}}},
                 "generation": {"R1": {}, "R2": teacher("R1")}}}, sort_keys=False))
    return path


def statuses(out: Path) -> dict[str, dict]:
    plan = json.loads((out / "plan.json").read_text())
    return {r["id"]: json.loads((out / r["folder"] / "status.json").read_text()) for r in plan["runs"]}


def epochs_written(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_complete(out: Path) -> None:
    """Every run done, each epoch in its metrics once."""
    for run_id, status in statuses(out).items():
        assert status["status"] == "done", (run_id, status)
        assert epochs_written(out / "runs" / run_id) == list(range(1, EPOCHS + 1))


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study") / "scale.yaml")


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory) -> str:
    """results.csv of the local backend (one torch thread, as each Ray task gets with one CPU)."""
    out = tmp_path_factory.mktemp("local")
    run_study(load_study(study_file), out, threads=1)
    write_report(out)
    return (out / "results.csv").read_text()


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_backend_gives_the_local_results(ray_local, study_file, reference, tmp_path):
    study = load_study(study_file)
    outcome = run_study(study, tmp_path, backend="ray")
    assert outcome.count("done") == 4
    write_report(tmp_path)
    assert (tmp_path / "results.csv").read_text() == reference
    assert_complete(tmp_path)
    assert all(s["attempts"] == 1 and s["node"] for s in statuses(tmp_path).values())


def test_worker_killed_mid_run_resumes_without_loss_or_repeat(ray_local, study_file, reference, tmp_path):
    study = load_study(study_file)
    victim = tmp_path / "runs" / study.runs[0].id
    killed = {}

    def kill_once():  # SIGKILL the Ray worker training the first run, once it has an epoch checkpointed
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            try:
                status = json.loads((victim / "status.json").read_text())
                epochs = len(epochs_written(victim))
            except (OSError, ValueError):
                time.sleep(0.005)
                continue
            if status.get("status") == "running" and 1 <= epochs < EPOCHS and not (victim / "summary.json").exists():
                os.kill(status["pid"], signal.SIGKILL)
                killed.update(pid=status["pid"], epochs=epochs)
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_once, daemon=True)
    watcher.start()
    outcome = run_study(study, tmp_path, backend="ray")
    watcher.join(timeout=5)
    assert killed, "the first run finished before the watcher could kill its worker"
    assert outcome.count("done") == 4
    after = statuses(tmp_path)
    assert after[study.runs[0].id]["attempts"] == 2  # retried by Ray, resumed from its checkpoint
    assert after[study.runs[0].id]["pid"] != killed["pid"]
    assert all(s["attempts"] == 1 for run_id, s in after.items() if run_id != study.runs[0].id)
    assert_complete(tmp_path)
    write_report(tmp_path)
    assert (tmp_path / "results.csv").read_text() == reference


def test_study_folder_not_visible_on_the_worker_is_one_clear_error(tmp_path):
    from labelrep.errors import UserError
    from labelrep.study.backends import ray_task

    with pytest.raises(UserError, match="not visible on node"):
        ray_task(str(tmp_path / "runs" / "x"), {}, [], str(tmp_path), str(tmp_path), 1, None)
    assert not (tmp_path / "runs").exists()
