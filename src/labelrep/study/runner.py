"""Run a study's grid: each run a normal run folder under ``<study>/runs/<id>``, resumable and parallel.

State lives on disk, one ``status.json`` per run folder (pending, running, done, failed, skipped),
written atomically, so a killed study loses at most the epoch it was in: ``train(..., resume=True)``
picks up from the last checkpoint, evaluations (and what their watch parts wrote) are kept. A failed
run records its error and the others go on; ``retry_failed`` runs it again.

Runs that depend on runs (``study_run`` references) go after their parents: only a run whose parents
are done is started (in parallel too); the children of a failed or skipped run are marked skipped,
with the reason, and run on a later call once their parents are done.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import config as config_mod
from ..errors import UserError
from ..files import atomic_write_bytes, atomic_write_json, atomic_write_text
from .backends import BACKENDS, gpu_count, gpu_slots, run_on_ray, study_resources, take_gpu_share
from .spec import Evaluation, RunSpec, Study

PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"
STATUS_FILE = "status.json"
PLAN_FILE = "plan.json"
EVAL_DIR = "evaluations"
WATCH_DIR = "watch"
LABELS_FILE = "labels.json"


def run_folder(study_dir: Path, run: RunSpec | str) -> Path:
    return Path(study_dir) / "runs" / (run if isinstance(run, str) else run.id)


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"status": PENDING}


def _write_status(run_dir: Path, **fields) -> dict:
    atomic_write_json(Path(run_dir) / STATUS_FILE, fields)
    return fields


def evaluation_file(run_dir: Path, evaluation: Evaluation) -> Path:
    return Path(run_dir) / EVAL_DIR / f"{evaluation.key}.json"


def watch_folder(run_dir: Path, evaluation: Evaluation) -> Path:
    return Path(run_dir) / WATCH_DIR / evaluation.key


def needs_work(run_dir: Path, evaluations: list[Evaluation]) -> bool:
    """Done runs still need work when the study gained an evaluation since."""
    if read_status(run_dir).get("status") != DONE:
        return True
    return not all(evaluation_file(run_dir, ev).is_file() for ev in evaluations)


@contextlib.contextmanager
def _locked(path: Path, blocking: bool):
    """An advisory lock the kernel drops when its holder dies (even by SIGKILL)."""
    import fcntl

    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        raise
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _json_safe(value):
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def execute_run(run_dir: str | Path, config: dict, evaluations: list[Evaluation], hooks=None) -> dict:
    """Train (or resume) one run in its folder with the watch parts of its evaluations, then run the
    after parts it lacks; returns its status."""
    from ..evaluate.registry import WATCHES, run_after, watch_hooks
    from ..run import load_run
    from ..train import train

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # A worker orphaned by a killed study could still be in this folder: wait for it.
    with _locked(run_dir / ".lock", blocking=True):
        previous = read_status(run_dir)
        attempts = int(previous.get("attempts", 0)) + 1
        _write_status(run_dir, status=RUNNING, attempts=attempts, pid=os.getpid())
        started = time.perf_counter()
        try:
            if not (run_dir / "summary.json").is_file():
                watching = [watch_hooks(ev.name, watch_folder(run_dir, ev), ev.options) for ev in evaluations]
                train(config, out=run_dir, resume=True, hooks=[*watching, hooks])
            loaded = None
            if not (run_dir / LABELS_FILE).is_file():
                loaded = load_run(run_dir)
                describe_labels(loaded, run_dir)
            for ev in evaluations:
                file = evaluation_file(run_dir, ev)
                if file.is_file():
                    continue
                watched = watch_folder(run_dir, ev)
                if ev.name in WATCHES and not watched.is_dir():
                    raise UserError(f"evaluation {ev.name!r} watches training, but this run trained without it; "
                                    "delete the run folder to train it again with the evaluation")
                if loaded is None:
                    loaded = load_run(run_dir)
                options = dict(ev.options)
                if options.get("figure") is True:  # the evaluation draws its own figure into the run folder
                    (run_dir / "figures").mkdir(exist_ok=True)
                    options["figure"] = str(run_dir / "figures" / f"{ev.key}.png")
                elif isinstance(options.get("figure"), str):  # a relative name (checked by parse_study): in the run
                    options["figure"] = str(run_dir / options["figure"])
                    Path(options["figure"]).parent.mkdir(parents=True, exist_ok=True)
                rows = run_after(ev.name, loaded, options, watch=watched)
                file.parent.mkdir(exist_ok=True)
                text = json.dumps({"name": ev.name, "options": ev.options, "rows": rows}, default=_json_safe)
                atomic_write_text(file, text + "\n")
        except Exception as err:  # noqa: BLE001  (a failed run is recorded; the study goes on)
            atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return _write_status(run_dir, status=FAILED, attempts=attempts, pid=os.getpid(),
                                 error=f"{type(err).__name__}: {message}" if message else type(err).__name__,
                                 seconds=time.perf_counter() - started)
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "error.txt").unlink()
        return _write_status(run_dir, status=DONE, attempts=attempts, pid=os.getpid(),
                             seconds=time.perf_counter() - started)


def describe_labels(run, run_dir: Path) -> None:
    """The label table's statistics into the run folder, its picture once per study (labels/<key>.png)."""
    from ..evaluate.label_stats import draw_labels, label_stats

    cfg = run.config
    key = config_mod.config_hash({"dataset": cfg["data"]["dataset"], "label": cfg["label"]})
    stats = {"key": key, "label": cfg["label"]["name"], "options": cfg["label"]["options"],
             "dataset": cfg["data"]["dataset"], **label_stats(run.label_space.table.cpu().numpy())}
    picture = run_dir.parent.parent / "labels" / f"{key}.png"
    if not picture.is_file():
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            picture = None
        if picture is not None:
            import io

            import matplotlib.pyplot as plt

            fig = draw_labels(run.label_space)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            picture.parent.mkdir(exist_ok=True)
            atomic_write_bytes(picture, buf.getvalue())
    atomic_write_text(run_dir / LABELS_FILE, json.dumps(stats, default=_json_safe) + "\n")


# ---------------------------------------------------------------- parallel workers

def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the study process dies, so no orphan keeps training."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(tasks, results, threads: int, gpu: int | None, gpu_share: float | None = None) -> None:
    import signal

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    torch.set_num_threads(threads)
    take_gpu_share(gpu_share)
    while True:
        task = tasks.get()
        if task is None:
            return
        run_id, run_dir, config, evaluations = task
        results.put(("start", os.getpid(), run_id, None))
        results.put(("end", os.getpid(), run_id, execute_run(run_dir, config, evaluations)))


class _Graph:
    """Which runs of ``todo`` may start: those whose parents are done; the children of a failed or
    skipped run are skipped (with the reason) as soon as that is known."""

    def __init__(self, todo: list[RunSpec], statuses: dict[str, dict], study: Study, study_dir: Path, event):
        self.waiting, self.statuses, self.study_dir, self.event = list(todo), statuses, study_dir, event
        self.cells = {spec.id: spec.cell for spec in study.runs}

    def _state(self, run_id: str) -> str | None:
        return self.statuses.get(run_id, {}).get("status")

    def ready(self) -> list[RunSpec]:
        """Runs to start now, in plan order; marks the blocked ones skipped on the way."""
        out, changed = [], True
        while changed:  # a skip can block a grandchild further down the plan
            changed = False
            for spec in list(self.waiting):
                bad = [p for p in spec.parents if self._state(p) in (FAILED, SKIPPED)]
                if bad:
                    self.waiting.remove(spec)
                    self.skip(spec, bad[0])
                    changed = True
                elif all(self._state(p) == DONE for p in spec.parents) and spec not in out:
                    out.append(spec)
        for spec in out:
            self.waiting.remove(spec)
        return out

    def skip(self, spec: RunSpec, parent: str) -> None:
        folder = run_folder(self.study_dir, spec)
        cell = ", ".join(f"{k}={v}" for k, v in self.cells[parent].items())
        why = self.statuses[parent].get("error") or ""
        reason = f"parent run {parent} ({cell}) {self._state(parent)}" + (f": {why}" if why else "")
        folder.mkdir(parents=True, exist_ok=True)
        self.statuses[spec.id] = _write_status(folder, status=SKIPPED, error=reason,
                                               attempts=read_status(folder).get("attempts", 0))
        self.event("end", spec, self.statuses[spec.id])


def _run_serial(graph: _Graph, study: Study, study_dir: Path, event, hooks_factory) -> None:
    while True:
        ready = graph.ready()
        if not ready:
            return
        spec = ready[0]
        graph.waiting[:0] = ready[1:]  # the others wait for the next round (plan order kept)
        event("start", spec, None)
        hooks = hooks_factory(spec) if hooks_factory else None
        graph.statuses[spec.id] = execute_run(run_folder(study_dir, spec), spec.config_in(_folder_of(study_dir)),
                                              study.evaluations_for(spec), hooks=hooks)
        event("end", spec, graph.statuses[spec.id])


def _folder_of(study_dir: Path):
    return lambda run_id: run_folder(study_dir, run_id).resolve()


def _run_parallel(graph: _Graph, todo: list[RunSpec], study_dir: Path, study: Study, jobs: int,
                  event: Callable, threads: int | None = None, gpus_per_run: float = 0.0) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    tasks, results = ctx.Queue(), ctx.Queue()
    by_id = {spec.id: spec for spec in todo}
    out = graph.statuses
    in_flight: set[str] = set()
    stopped = [False]

    def dispatch():
        for spec in graph.ready():
            in_flight.add(spec.id)
            tasks.put((spec.id, str(run_folder(study_dir, spec)), spec.config_in(_folder_of(study_dir)),
                       study.evaluations_for(spec)))
        if not graph.waiting and not stopped[0]:
            for _ in range(jobs):
                tasks.put(None)
            stopped[0] = True

    jobs = min(jobs, len(todo))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    gpus = gpu_slots(jobs, gpu_count(), gpus_per_run)  # gpus_per_run 0.25: four workers to a GPU

    def start(gpu):
        p = ctx.Process(target=_worker_main, args=(tasks, results, threads, gpu, gpus_per_run or None), daemon=True)
        p.start()
        return p

    dispatch()
    workers = {i: start(gpus[i]) for i in range(jobs)}
    busy: dict[int, str] = {}  # worker pid -> run id
    try:
        while in_flight:
            try:
                kind, pid, run_id, status = results.get(timeout=1.0)
            except queue.Empty:
                for i, p in list(workers.items()):
                    if p.is_alive() or p.exitcode == 0:
                        continue
                    run_id = busy.pop(p.pid, None)
                    if run_id is not None and run_id in in_flight:
                        in_flight.discard(run_id)
                        out[run_id] = _write_status(
                            run_folder(study_dir, run_id), status=FAILED,
                            attempts=read_status(run_folder(study_dir, run_id)).get("attempts", 1),
                            error=f"the worker process died (exit code {p.exitcode}: killed, or out of memory)")
                        event("end", by_id[run_id], out[run_id])
                        dispatch()
                    workers[i] = start(gpus[i])  # it never took its stop sentinel: the new one will
                continue
            if kind == "start":
                busy[pid] = run_id
                event("start", by_id[run_id], None)
            else:
                busy.pop(pid, None)
                in_flight.discard(run_id)
                out[run_id] = status
                event("end", by_id[run_id], status)
                dispatch()
    finally:
        for p in workers.values():
            if p.is_alive():
                p.terminate()
        for p in workers.values():
            p.join(timeout=10)


# ---------------------------------------------------------------- the study

@dataclass
class StudyOutcome:
    study_dir: Path
    statuses: dict[str, dict]   # run id -> status record, in plan order

    def count(self, status: str) -> int:
        return sum(s.get("status") == status for s in self.statuses.values())


def write_plan(study: Study, study_dir: Path) -> None:
    import yaml

    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(study_dir / "study.yaml", yaml.safe_dump(study.source, sort_keys=False))
    atomic_write_json(study_dir / PLAN_FILE, {
        "name": study.name, "description": study.description,
        "axes": [{"name": a.name, "values": a.values} for a in study.axes], "seeds": study.seeds,
        "evaluations": [{"name": e.name, "options": e.options, "key": e.key, "where": e.where}
                        for e in study.evaluations],
        "runs": [{"id": r.id, "cell": r.cell, "folder": f"runs/{r.id}", **({"parents": r.parents} if r.parents else {})}
                 for r in study.runs],
    })


def run_study(study: Study, study_dir: str | Path, jobs: int = 1, retry_failed: bool = False,
              on_event: Callable | None = None, hooks_factory: Callable | None = None,
              threads: int | None = None, backend: str = "local", address: str | None = None) -> StudyOutcome:
    """Run every run of the study that is not done yet; ``on_event(kind, run, status)`` reports
    ``skip``, ``start`` and ``end``. ``hooks_factory(run)`` gives training hooks (in-process only).
    ``threads``: torch threads per run (default: torch's own with one job, cores / jobs with several).
    ``backend``: ``local`` (this machine, ``jobs`` processes) or ``ray`` (tasks on the Ray cluster at
    ``address``, or a Ray instance on this machine; see study/backends.py)."""
    study_dir = Path(study_dir)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    event = on_event or (lambda kind, run, status: None)
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the study folder {study_dir} ({err.strerror})") from None
    try:
        with _locked(study_dir / ".lock", blocking=False):
            write_plan(study, study_dir)
            statuses: dict[str, dict] = {}
            todo = []
            for spec in study.runs:
                folder = run_folder(study_dir, spec)
                status = read_status(folder)
                if status.get("status") == FAILED and not retry_failed:
                    statuses[spec.id] = status
                    event("skip", spec, status)
                elif not needs_work(folder, study.evaluations_for(spec)):
                    statuses[spec.id] = status
                    event("skip", spec, status)
                else:
                    todo.append(spec)
            graph = _Graph(todo, statuses, study, study_dir, event)
            if backend == "ray":
                if todo:
                    run_on_ray(graph, lambda spec: (run_folder(study_dir, spec), spec.config_in(_folder_of(study_dir)),
                                                    study.evaluations_for(spec)),
                               event, study_resources(study), address, study_dir, threads)
            elif jobs == 1 or len(todo) <= 1:
                if threads is not None and todo:
                    import torch

                    torch.set_num_threads(threads)
                _run_serial(graph, study, study_dir, event, hooks_factory)
            elif todo:
                _run_parallel(graph, todo, study_dir, study, jobs, event, threads, study_resources(study).gpus_per_run)
    except BlockingIOError:
        raise UserError(f"another labelrep study is running in {study_dir}; wait for it or use another --out") from None
    return StudyOutcome(study_dir, {spec.id: statuses[spec.id] for spec in study.runs})


# ---------------------------------------------------------------- cost estimate (--dry-run)

def _time_steps(parts, steps: int = 3) -> tuple[float, float]:
    """Seconds per training step and per evaluated image, measured on this machine."""
    import torch

    model, space = parts.model, parts.label_space
    loader = parts.loader(parts.train, train=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay put
    sync = torch.cuda.synchronize if parts.device.type == "cuda" else (lambda: None)
    batches = iter(loader)
    times = []
    for i in range(steps + 1):
        try:
            x, y, _ = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y, _ = next(batches)
        sync()
        t0 = time.perf_counter()
        loss = space.loss(model(x), space.targets(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        x = next(iter(parts.loader(parts.data.test)))[0]
        space.scores(model(x))  # warm-up
        sync()
        t0 = time.perf_counter()
        space.scores(model(x))
        sync()
        per_image = (time.perf_counter() - t0) / len(x)
    return sorted(times)[len(times) // 2], per_image


def estimate(study: Study, study_dir: str | Path, measure: bool = True) -> list[dict]:
    """One row per run: its cell, status, training images, steps, and (measured) seconds."""
    from ..data import load_dataset
    from ..train.loop import plan_steps
    from ..train.setup import build_run, select_training_images

    study_dir = Path(study_dir)
    datasets: dict[str, object] = {}
    speeds: dict[str, tuple[float, float]] = {}
    rows = []
    for spec in study.runs:
        cfg = spec.config
        d = cfg["data"]
        data_key = json.dumps([d["dataset"], d["data_dir"], d["options"]], sort_keys=True, default=str)
        if data_key not in datasets:
            datasets[data_key] = load_dataset(d["dataset"], d["data_dir"], d["download"], **d["options"])
        data = datasets[data_key]
        train_split, val = select_training_images(data, d, cfg["train"]["seed"])
        batch = cfg["optim"]["batch_size"]
        n = len(train_split)
        epochs, steps = plan_steps(cfg["train"], n // batch if n > batch else 1)  # train.steps, as the loop
        status = read_status(run_folder(study_dir, spec)).get("status", PENDING)
        row = {"id": spec.id, **spec.cell, "status": status, "epochs": epochs,
               "train_images": n, "steps": steps, "seconds": None}
        if measure:
            speed_key = json.dumps([cfg["model"], cfg["label"], data_key, batch, cfg["train"]["device"]],
                                   sort_keys=True, default=str)
            if speed_key not in speeds:
                speeds[speed_key] = _time_steps(build_run(cfg))
            step_s, image_s = speeds[speed_key]
            evaluated = len(data.test) + (len(val) if val is not None else 0)
            row["seconds"] = steps * step_s + cfg["train"]["epochs"] * evaluated * image_s
        rows.append(row)
    return rows


def format_seconds(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
