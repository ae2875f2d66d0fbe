"""Scaling on this machine, as ratios: the local and Ray study backends with 1 vs 2 workers (runs per
minute), and one run on 2 DDP processes (gloo) against one process.

    PYTHONPATH=src python benchmarks/scaling.py [--runs 6] [--epochs 3] [--out runs/bench-scaling]

Every run uses one torch thread. Backends: the same tiny study (digits, fastnet [16, 32]) run in this
process by ``run_study``, timed from submission to the last run's end (Ray's start-up excluded and
printed apart). DDP: ``labelrep train --nproc 2`` vs ``labelrep train``, the summed epoch training
seconds of each (process start-up excluded) and the whole command's wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BASE = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [16, 32]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu"}}


def study(runs: int, epochs: int):
    from labelrep.study import parse_study

    labels = {"onehot": {"label.name": "categorical"},
              "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.1}}}}
    return parse_study({"name": "bench-scaling", "base": {**BASE, "train": {**BASE["train"], "epochs": epochs}},
                        "axes": {"label": labels}, "seeds": max(1, runs // 2), "resources": {"cpus_per_run": 1}})


def time_backend(backend: str, workers: int, out: Path, runs: int, epochs: int) -> dict:
    from labelrep.study import run_study

    shutil.rmtree(out, ignore_errors=True)
    startup = 0.0
    if backend == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t0
    try:
        s = study(runs, epochs)
        t0 = time.perf_counter()
        outcome = run_study(s, out, jobs=workers if backend == "local" else 1, threads=1, backend=backend)
        seconds = time.perf_counter() - t0
    finally:
        if backend == "ray":
            ray.shutdown()
    assert outcome.count("done") == len(s.runs), outcome.statuses
    return {"backend": backend, "workers": workers, "runs": len(s.runs), "seconds": seconds,
            "runs_per_minute": 60 * len(s.runs) / seconds, "startup": startup}


def time_ddp(nproc: int, out: Path, epochs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "labelrep", "train", "--out", str(out), "--epochs", str(epochs), "--quiet",
           "--device", "cpu", "--set", "model.options.widths=[16,32,64]", "--set", "optim.batch_size=128"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return {"nproc": nproc, "train_seconds": summary["train_seconds"], "wall": wall,
            "test_accuracy": summary["test_accuracy"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ddp-epochs", type=int, default=6)
    p.add_argument("--out", default="runs/bench-scaling")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    rows = {}
    for backend in ("local", "ray"):
        for workers in (1, 2):
            rows[backend, workers] = r = time_backend(backend, workers, out / f"{backend}-{workers}", args.runs,
                                                      args.epochs)
            print(json.dumps(r), flush=True)
    ddp = [time_ddp(n, out / f"ddp-{n}", args.ddp_epochs) for n in (1, 2)]
    for r in ddp:
        print(json.dumps(r), flush=True)

    print(f"\n| backend | runs/min, 1 worker | runs/min, 2 workers | 2 vs 1 |\n| --- | --- | --- | --- |")
    for backend in ("local", "ray"):
        one, two = rows[backend, 1], rows[backend, 2]
        print(f"| {backend} | {one['runs_per_minute']:.1f} | {two['runs_per_minute']:.1f} | "
              f"{two['runs_per_minute'] / one['runs_per_minute']:.2f}x |")
    print(f"| ray / local, 2 workers | | | {rows['ray', 2]['runs_per_minute'] / rows['local', 2]['runs_per_minute']:.2f}x |")
    print(f"\nRay start-up (not in the rates): {rows['ray', 1]['startup']:.0f} s and {rows['ray', 2]['startup']:.0f} s")
    one, two = ddp
    print(f"\nDDP, 2 gloo processes vs 1 process, {args.ddp_epochs} epochs: training seconds "
          f"{two['train_seconds']:.1f} vs {one['train_seconds']:.1f} ({two['train_seconds'] / one['train_seconds']:.2f}x); "
          f"whole command {two['wall']:.0f} s vs {one['wall']:.0f} s ({two['wall'] / one['wall']:.2f}x); "
          f"test accuracy {two['test_accuracy']:.4f} vs {one['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
