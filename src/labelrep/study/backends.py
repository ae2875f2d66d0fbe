"""Where a study's runs execute: what one run takes (``resources``), packing runs onto GPUs, and the
Ray backend (``labelrep study FILE --backend ray [--address ADDR]``).

The Ray backend submits each run as one Ray task that calls the same ``execute_run`` as the local
workers, with the run's declared CPUs and GPU share. Tasks write straight into the run folders,
which must be on storage every node sees (NFS, a cluster file system; one machine's disk for a
one-node cluster): the folder's ``status.json`` and per-epoch checkpoint stay the one source of
truth, so a worker killed mid-run is retried by Ray and resumes from its last epoch, a killed
driver is rerun with the same command, and finished runs are skipped, never redone. Shipping
results back to the driver instead would lose a cut-off run's checkpoint with its worker.

A study file's ``resources: {cpus_per_run: 1, gpus_per_run: 0.25}`` says what one run takes:
Ray reserves it per task; a fraction of a GPU packs ``1 / gpus_per_run`` runs on each GPU (local
``--jobs auto`` does the same), each capped to its share of the GPU's memory.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError

BACKENDS = ("local", "ray")
RESOURCE_KEYS = ("cpus_per_run", "gpus_per_run")


@dataclass(frozen=True)
class Resources:
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    @property
    def threads(self) -> int:
        """torch CPU threads a run gets: its whole CPUs (at least one)."""
        return max(1, int(self.cpus_per_run))

    def describe(self) -> str:
        gpu = f", {self.gpus_per_run:g} GPU" if self.gpus_per_run else ""
        return f"{self.cpus_per_run:g} CPU{'' if self.cpus_per_run == 1 else 's'}{gpu} per run"


def parse_resources(raw) -> Resources:
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise UserError(f"'resources' must be a mapping such as {{cpus_per_run: 1, gpus_per_run: 0.25}}, got {raw!r}")
    unknown = set(raw) - set(RESOURCE_KEYS)
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} in 'resources'; "
                        f"known: {', '.join(RESOURCE_KEYS)}")
    values = {}
    for key in RESOURCE_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"resources.{key} must be a number >= 0, got {value!r}")
        values[key] = float(value)
    out = Resources(**values)
    if out.cpus_per_run <= 0:
        raise UserError("resources.cpus_per_run must be more than 0")
    if out.gpus_per_run > 1 and not out.gpus_per_run.is_integer():
        raise UserError(f"resources.gpus_per_run is {out.gpus_per_run:g}: a share of one GPU (at most 1) "
                        "or a whole number of GPUs")
    return out


def study_resources(study) -> Resources:
    return parse_resources(study.source.get("resources"))


def declared_threads(study) -> int | None:
    """torch threads per run from a declared ``resources.cpus_per_run`` (None: not declared)."""
    raw = study.source.get("resources") or {}
    return study_resources(study).threads if "cpus_per_run" in raw else None


# ---------------------------------------------------------------- packing runs on this machine

def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def gpu_slots(jobs: int, gpus: int, gpus_per_run: float = 0.0) -> list[int | None]:
    """The GPU each of ``jobs`` local workers uses: packed ``1 / gpus_per_run`` to a GPU when a share
    is declared, else spread round-robin; ``None`` (whatever is visible) on a machine with one GPU or none."""
    if gpus == 0 or (gpus == 1 and not gpus_per_run):
        return [None] * jobs
    if gpus_per_run and gpus_per_run < 1:
        per_gpu = int(1 / gpus_per_run + 1e-9)
        return [(i // per_gpu) % gpus for i in range(jobs)]
    return [i % gpus for i in range(jobs)]


def concurrency(resources: Resources, cpus: float, gpus: float) -> int:
    """How many runs fit at once on ``cpus`` CPUs and ``gpus`` GPUs (0: not one)."""
    fits = [int(cpus / resources.cpus_per_run + 1e-9)]
    if resources.gpus_per_run:
        fits.append(int(gpus / resources.gpus_per_run + 1e-9))
    return min(fits)


def local_jobs(resources: Resources) -> int:
    """``--jobs auto``: as many runs as this machine holds at the declared resources (a machine
    without a GPU runs them on its CPUs)."""
    gpus = gpu_count()
    return max(1, concurrency(resources if gpus else Resources(resources.cpus_per_run), os.cpu_count() or 1, gpus))


def take_gpu_share(share: float | None) -> None:
    """A run packed with others on one GPU keeps to its share of the GPU's memory."""
    if share and share < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(share)


# ---------------------------------------------------------------- the Ray backend

def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'labelrep[ray]'") from None
    return ray


def ray_task(run_dir: str, config: dict, evaluations: list, study_dir: str, cwd: str, threads: int,
             gpu_share: float | None) -> dict:
    """One run on a Ray worker: the local worker's ``execute_run``, in the study folder every node sees."""
    from .runner import PLAN_FILE, _write_status, execute_run, needs_work, read_status

    if not (Path(study_dir) / PLAN_FILE).is_file():
        import socket

        raise UserError(f"the study folder {study_dir} is not visible on node {socket.gethostname()}; "
                        "put it (--out) on storage every node of the Ray cluster mounts at the same path")
    if Path(cwd).is_dir():  # relative data paths mean what they mean for the driver
        os.chdir(cwd)
    if not needs_work(Path(run_dir), evaluations):  # a retry after the run had finished: nothing to redo
        return read_status(Path(run_dir))
    import ray
    import torch

    torch.set_num_threads(threads)
    take_gpu_share(gpu_share)
    status = execute_run(run_dir, config, evaluations)
    return _write_status(Path(run_dir), **status, node=ray.util.get_node_ip_address())  # which node ran it


def connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` (or start one on this machine); returns whether we started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level="ERROR")
    except ConnectionError as err:
        raise UserError(f"cannot reach the Ray cluster at {address} ({err}); start it with `ray start --head` "
                        "or leave out --address to run on this machine") from None
    return True


def cluster_resources(address: str | None) -> tuple[float, float, bool]:
    """``(CPUs, GPUs, measured)`` of the cluster at ``address``; without one, this machine's."""
    if address is None:
        return float(os.cpu_count() or 1), float(gpu_count()), False
    ray = import_ray()
    started = connect(ray, address)
    try:
        total = ray.cluster_resources()
    finally:
        if started:
            ray.shutdown()
    return float(total.get("CPU", 0)), float(total.get("GPU", 0)), True


def run_on_ray(graph, task_for: Callable, event: Callable, resources: Resources, address: str | None,
               study_dir: Path, threads: int | None = None, retries: int = 3) -> None:
    """Run ``graph.ready()`` runs as Ray tasks until none is left, filling ``graph.statuses``.

    ``task_for(run) -> (run_dir, config, evaluations)``. A run is submitted once its parents are
    done (``graph.ready()`` says which); a worker that dies is retried ``retries`` times by Ray,
    each retry resuming from the run's last checkpoint."""
    from .runner import FAILED, _write_status, read_status

    ray = import_ray()
    started = connect(ray, address)
    total = ray.cluster_resources()
    if resources.cpus_per_run > total.get("CPU", 0) or resources.gpus_per_run > total.get("GPU", 0):
        if started:
            ray.shutdown()
        raise UserError(f"no node of the Ray cluster has {resources.describe()} (the cluster has "
                        f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs); lower 'resources' in the study file")
    remote = ray.remote(num_cpus=resources.cpus_per_run, num_gpus=resources.gpus_per_run,
                        max_retries=retries)(ray_task)
    study_dir, cwd = str(Path(study_dir).resolve()), os.getcwd()
    threads = threads or resources.threads
    pending: dict = {}

    def submit() -> None:
        for spec in graph.ready():
            run_dir, config, evaluations = task_for(spec)
            ref = remote.remote(str(Path(run_dir).resolve()), config, evaluations, study_dir, cwd, threads,
                                resources.gpus_per_run or None)
            pending[ref] = spec
            event("start", spec, None)

    try:
        submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                continue
            spec = pending.pop(done[0])
            run_dir = task_for(spec)[0]
            try:
                status = ray.get(done[0])
            except Exception as err:  # noqa: BLE001
                cause = getattr(err, "cause", None)
                if isinstance(err, UserError) or isinstance(cause, UserError):
                    raise UserError(str(cause if isinstance(cause, UserError) else err).splitlines()[-1]) from None
                status = _write_status(Path(run_dir), status=FAILED,
                                       attempts=read_status(Path(run_dir)).get("attempts", 1),
                                       error=f"the Ray task failed after {retries} retries: "
                                             f"{type(err).__name__} (a killed worker or node, or out of memory)")
            graph.statuses[spec.id] = status
            event("end", spec, status)
            submit()
    finally:
        for ref in pending:  # interrupted: the runs stay 'running' on disk and resume on the next call
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ---------------------------------------------------------------- the plan (--dry-run)

def makespan(seconds: dict[str, float], parents: dict[str, list[str]], order: list[str], slots: int) -> float:
    """Wall time of running ``order`` on ``slots`` workers, each run as soon as a worker is free and its
    parents have finished (list scheduling in plan order)."""
    free = [0.0] * max(1, slots)
    finish: dict[str, float] = {}
    for run in order:
        ready = max([finish.get(p, 0.0) for p in parents.get(run, [])], default=0.0)
        i = min(range(len(free)), key=free.__getitem__)
        start = max(free[i], ready)
        finish[run] = free[i] = start + seconds[run]
    return max(finish.values(), default=0.0)


@dataclass
class Plan:
    backend: str
    resources: Resources
    slots: int          # runs at once
    where: str          # what the slots were computed from
    wall_seconds: float | None


def plan(study, rows: list[dict], backend: str, jobs: int | None, address: str | None) -> Plan:
    """How the runs still to do spread over the chosen backend, from ``estimate`` rows."""
    resources = study_resources(study)
    if backend == "ray":
        cpus, gpus, measured = cluster_resources(address)
        slots = concurrency(resources, cpus, gpus)
        where = (f"the Ray cluster at {address}" if measured else "a Ray instance on this machine") + \
            f": {cpus:g} CPUs, {gpus:g} GPUs"
    else:
        slots = jobs or 1
        gpus = gpu_count()
        where = f"this machine ({os.cpu_count()} CPUs, {gpus} GPUs; --jobs {slots})"
        if gpus and resources.gpus_per_run and slots > 1:
            per = max(1, int(1 / resources.gpus_per_run + 1e-9)) if resources.gpus_per_run < 1 else 1
            where += f", {per} run{'s' if per > 1 else ''} per GPU"
    todo = [r for r in rows if r["status"] != "done"]
    wall = None
    if slots == 0:
        where += f"; not one run fits ({resources.describe()})"
    elif todo and all(r["seconds"] is not None for r in todo):
        parents = {spec.id: list(getattr(spec, "parents", [])) for spec in study.runs}
        wall = makespan({r["id"]: r["seconds"] for r in todo}, parents, [r["id"] for r in todo], slots)
    return Plan(backend, resources, slots, where, wall)
