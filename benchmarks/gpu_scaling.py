"""GPU scaling, one short script for a lent GPU machine (run by benchmarks/gpu_scaling.sh).

On the same GPU it measures:
1. the full-CIFAR-10 epoch time of ResNet-20 and fastnet with bf16 autocast and torch.compile
   (2 epochs each; epoch 1 holds the compilation, epoch 2 is the figure);
2. runs per hour when packing 1, 2 and 4 runs on the GPU (local backend, ``--jobs k`` with
   ``resources.gpus_per_run: 1/k``; 4 fastnet runs of 2 epochs, amp on, compile off so each packed
   process does not spend its time compiling); with Ray importable, the same at k = 4 on Ray;
3. with 2+ GPUs: the DDP speed-up of one ResNet-20 run on all GPUs against one GPU.

Each stage appends to OUT/gpu_scaling.json as it ends and the markdown summary is rewritten, so a
stage cut off by the time limit leaves the earlier ones.

    python3 benchmarks/gpu_scaling.py --data-dir /tmp/cifar/cifar10 --out $OUT [--skip-epochs]
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

import yaml

ROOT = Path(__file__).resolve().parents[1]


SMOKE: list[str] = []  # --smoke: extra flags that shrink every run (a CPU check of this script)


def labelrep(*args: str, env: dict | None = None, timeout: int = 600) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "labelrep", *args], check=True, timeout=timeout,
                   env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def epoch_times(data_dir: str, work: Path, model: str) -> dict:
    out = work / f"epoch-{model}"
    shutil.rmtree(out, ignore_errors=True)
    wall = labelrep("train", "--dataset", "cifar10", "--data-dir", data_dir, "--model", model, "--epochs", "2",
                    "--eval-every", "2", "--out", str(out), "--quiet", "--set", "train.amp=true",
                    "--set", f"train.compile={'false' if SMOKE else 'true'}", *SMOKE)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"stage": "epoch", "model": model, "epoch1_train_s": history[0]["train_seconds"],
            "epoch2_train_s": history[1]["train_seconds"], "test_accuracy_after_2": history[1]["test_accuracy"],
            "wall_s": wall}


def packing(data_dir: str, work: Path, k: int, backend: str = "local", runs: int = 4) -> dict:
    file = work / f"pack-{backend}-{k}.yaml"
    file.write_text(yaml.safe_dump({
        "name": f"pack-{backend}-{k}",
        "base": {"data": {"dataset": "cifar10", "data_dir": data_dir, "fraction": 0.02 if SMOKE else 1.0},
                 "model": {"name": "fastnet"},
                 "train": {"epochs": 2, "amp": True, "compile": False, "eval_every": 2}},
        "axes": {"label": {"onehot": {"label.name": "categorical"},
                           "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.1}}}}},
        "seeds": max(1, runs // 2), "resources": {"cpus_per_run": 2, "gpus_per_run": 1 / k}}))
    out = work / f"pack-{backend}-{k}"
    shutil.rmtree(out, ignore_errors=True)
    args = ["study", str(file), "--out", str(out), "--quiet"]
    args += ["--backend", "ray"] if backend == "ray" else ["--jobs", str(k)]
    wall = labelrep(*args)
    return {"stage": "packing", "backend": backend, "runs_per_gpu": k, "runs": runs, "wall_s": wall,
            "runs_per_hour": 3600 * runs / wall}


def ddp(data_dir: str, work: Path, nproc: int) -> dict:
    out = work / f"ddp-{nproc}"
    shutil.rmtree(out, ignore_errors=True)
    wall = labelrep("train", "--dataset", "cifar10", "--data-dir", data_dir, "--model", "resnet20", "--epochs", "2",
                    "--eval-every", "2", "--out", str(out), "--quiet", "--set", "train.amp=true",
                    "--nproc", str(nproc), *SMOKE)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"stage": "ddp", "nproc": nproc, "epoch2_train_s": history[1]["train_seconds"], "wall_s": wall}


def write_summary(rows: list[dict], out: Path, device: str) -> None:
    lines = [f"# GPU scaling on {device}", ""]
    epochs = [r for r in rows if r["stage"] == "epoch"]
    if epochs:
        lines += ["Full CIFAR-10 epoch (50,000 images), bf16 autocast + torch.compile:", "",
                  "| model | epoch 1 (compiles) s | epoch 2 s | test acc. after 2 |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['epoch1_train_s']:.1f} | {r['epoch2_train_s']:.1f} | "
                  f"{r['test_accuracy_after_2']:.4f} |" for r in epochs]
        lines.append("")
    packs = [r for r in rows if r["stage"] == "packing"]
    if packs:
        base = next((r["runs_per_hour"] for r in packs if r["runs_per_gpu"] == 1 and r["backend"] == "local"), None)
        lines += ["Packing fastnet runs (2 epochs each) on one GPU:", "",
                  "| backend | runs per GPU | wall s | runs/hour | vs 1 per GPU |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['backend']} | {r['runs_per_gpu']} | {r['wall_s']:.0f} | {r['runs_per_hour']:.0f} | "
                  + (f"{r['runs_per_hour'] / base:.2f}x |" if base else "- |") for r in packs]
        lines.append("")
    ddps = [r for r in rows if r["stage"] == "ddp"]
    if len(ddps) == 2:
        lines.append(f"DDP ResNet-20, epoch 2: {ddps[0]['epoch2_train_s']:.1f} s on 1 GPU, "
                     f"{ddps[1]['epoch2_train_s']:.1f} s on {ddps[1]['nproc']} "
                     f"({ddps[0]['epoch2_train_s'] / ddps[1]['epoch2_train_s']:.2f}x)")
    (out / "gpu_scaling.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="unpacked CIFAR-10 image folder (cifar10/ with train/, test/)")
    p.add_argument("--out", required=True, help="folder for gpu_scaling.json and gpu_scaling.md")
    p.add_argument("--work", default="/tmp/labelrep-gpu-scaling", help="run folders")
    p.add_argument("--skip-epochs", action="store_true", help="only the packing (and DDP) stages")
    p.add_argument("--smoke", action="store_true", help="2 %% of the data, no compile, CPU allowed: checks the script")
    args = p.parse_args()
    import torch

    if args.smoke:
        SMOKE.extend(["--fraction", "0.02"])
    elif not torch.cuda.is_available():
        sys.exit("gpu_scaling: no CUDA device here")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    device = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
              else "CPU (smoke check)") + f", torch {torch.__version__}"
    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "gpu_scaling.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
        write_summary(rows, out, device)

    # The image folder is decoded once into a cache beside it; a first short run pays for that.
    t0 = time.perf_counter()
    labelrep("train", "--dataset", "cifar10", "--data-dir", args.data_dir, "--model", "fastnet", "--fraction", "0.02",
             "--epochs", "1", "--out", str(work / "warm"), "--quiet")
    print(f"decode + warm-up: {time.perf_counter() - t0:.0f} s", flush=True)
    shutil.rmtree(work / "warm", ignore_errors=True)
    if not args.skip_epochs:
        for model in ("fastnet", "resnet20"):
            record(epoch_times(args.data_dir, work, model))
    for k in (1, 2, 4):
        record(packing(args.data_dir, work, k))
    try:
        import ray  # noqa: F401

        record(packing(args.data_dir, work, 4, backend="ray"))
    except ImportError:
        print("ray is not installed here: the Ray packing stage is skipped", flush=True)
    if torch.cuda.device_count() >= 2:
        for n in (1, torch.cuda.device_count()):
            record(ddp(args.data_dir, work, n))
    else:
        print("one GPU: the DDP stage is skipped", flush=True)


if __name__ == "__main__":
    main()
