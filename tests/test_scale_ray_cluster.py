"""The Ray backend on a two-node cluster this module starts with ``ray start`` on loopback addresses
(127.0.0.2 head, 127.0.0.3 worker, one CPU each, a private auth token): ``labelrep study --backend ray
--address`` gives the local backend's results.csv using both nodes, and a driver killed with SIGKILL
mid-study is rerun with the same command to the same results, no finished run redone or lost."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_scale_ray import EPOCHS, assert_complete, epochs_written, statuses
from test_scale_ray import reference, study_file  # noqa: F401  (the same fixtures: study file, local results)

from labelrep.study import load_study

pytest.importorskip("ray")

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.heavy]

HEAD, WORKER = "127.0.0.2", "127.0.0.3"  # loopback (127/8); Ray rewrites 127.0.0.1 to the machine's address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(env: dict, ip: str, temp: str, head_port: int, log: Path) -> subprocess.Popen:
    ports = [f"--{name}={_free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                      "metrics-export-port", "runtime-env-agent-port")]
    args = [shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray", "start", "--block",
            f"--node-ip-address={ip}", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", *ports]
    if ip == HEAD:
        args += ["--head", f"--port={head_port}", f"--temp-dir={temp}", "--include-dashboard=false",
                 f"--ray-client-server-port={_free_port()}"]
    else:
        args += [f"--address={HEAD}:{head_port}"]
    # Its own session, so teardown ends this node's processes (and only them) by process group.
    return subprocess.Popen(args, env=env, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster():
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "OMP_NUM_THREADS": "1"}
    temp = tempfile.mkdtemp(prefix="lr-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    nodes = [_ray_start(env, HEAD, temp, port, Path(temp) / "head.log")]
    try:
        address = f"{HEAD}:{port}"
        probe = "import ray, sys, time\n" \
                f"ray.init(address={address!r}, log_to_driver=False)\n" \
                "while sum(n['Alive'] for n in ray.nodes()) < 2: time.sleep(0.2)\n"
        deadline = time.monotonic() + 120
        while subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r})"], env=env,
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (Path(temp) / "head.log").read_text()[-3000:]
            time.sleep(1)
        nodes.append(_ray_start(env, WORKER, temp, port, Path(temp) / "worker.log"))
        subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=180, capture_output=True)
        yield address, env
    finally:
        _stop(nodes, temp)


def _stop(nodes: list[subprocess.Popen], temp: str) -> None:
    """SIGKILL the nodes' process groups, then any process of this cluster that left them (found by
    the cluster's own temp folder on its command line): a graceful `ray stop` takes half a minute."""
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=60)
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if proc.name.isdigit() and temp.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _study_command(study_file: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "labelrep", "study", str(study_file), "--out", str(out), "--backend", "ray",
            "--address", address, "--quiet"]


def test_two_node_cluster_gives_the_local_results(cluster, study_file, reference, tmp_path):
    address, env = cluster
    done = subprocess.run(_study_command(study_file, tmp_path, address), env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results.csv").read_text() == reference
    assert_complete(tmp_path)
    assert {s["node"] for s in statuses(tmp_path).values()} == {HEAD, WORKER}  # both nodes trained runs


def test_killed_driver_reruns_to_the_same_results(cluster, study_file, reference, tmp_path):
    address, env = cluster
    driver = subprocess.Popen(_study_command(study_file, tmp_path, address), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    runs = [r.id for r in load_study(study_file).runs]
    deadline, finished_before, orphans = time.monotonic() + 400, set(), []
    while time.monotonic() < deadline and driver.poll() is None:
        # Kill when one run is done and another is part-way (an epoch checkpointed, not finished).
        finished, partway = set(), []
        for run_id in runs:
            folder = tmp_path / "runs" / run_id
            try:
                status = json.loads((folder / "status.json").read_text())
                epochs = len(epochs_written(folder)) if (folder / "metrics.jsonl").exists() else 0
            except (OSError, ValueError, KeyError):
                continue
            if status["status"] == "done":
                finished.add(run_id)
            elif status["status"] == "running" and 1 <= epochs < EPOCHS:
                partway.append(status["pid"])
        if finished and partway:
            driver.send_signal(signal.SIGKILL)
            finished_before, orphans = finished, partway
            break
        time.sleep(0.01)
    assert driver.wait(timeout=60) == -signal.SIGKILL, driver.stderr.read().decode()[-3000:]
    assert finished_before and len(finished_before) < len(runs)
    done_at = {r: (tmp_path / "runs" / r / "summary.json").stat().st_mtime_ns for r in finished_before}
    deadline = time.monotonic() + 120
    while orphans and time.monotonic() < deadline:  # Ray ends the dead driver's tasks (the README says so)
        orphans = [pid for pid in orphans if _alive(pid)]
        time.sleep(0.2)
    assert not orphans, "a task of the killed driver kept training"

    rerun = subprocess.run(_study_command(study_file, tmp_path, address), env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = statuses(tmp_path)
    for run_id in finished_before:  # skipped, not redone
        assert after[run_id]["attempts"] == 1
        assert (tmp_path / "runs" / run_id / "summary.json").stat().st_mtime_ns == done_at[run_id]
    assert all(s["attempts"] <= 2 for s in after.values())
    assert_complete(tmp_path)
    assert (tmp_path / "results.csv").read_text() == reference


def test_dry_run_reads_the_cluster(cluster, study_file, tmp_path):
    address, env = cluster
    done = subprocess.run([sys.executable, "-m", "labelrep", "study", str(study_file), "--out", str(tmp_path),
                           "--dry-run", "--no-measure", "--backend", "ray", "--address", address], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"2 runs at once on the Ray cluster at {address}: 2 CPUs, 0 GPUs" in done.stdout
