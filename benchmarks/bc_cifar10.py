"""Standard vs BC vs BC+ (and single-label BC, mixup) side by side on CIFAR-10: same encoder, seeds, budget.

Each (method, seed) is one ``labelrep.train`` run on a class-balanced subset; the script keeps a
JSON file of finished runs (re-running skips them, so an interrupted measurement continues),
checks that every recorded loss and accuracy is finite, and prints mean and spread per method.
For BC+ it also scores the test set *without* the test-time centring, to show what it is worth.

    OMP_NUM_THREADS=1 python benchmarks/bc_cifar10.py --data-dir /root/data/cifar10 \
        --fraction 0.1 --epochs 10 --seeds 0 1 --model fastnet --json /tmp/bc-cifar10.json

The methods are the variants of ``configs/bc-cifar10-quick.yaml`` (the study file).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from labelrep.evaluate.accuracy import accuracy
from labelrep.files import atomic_write_text
from labelrep.train import train

METHODS = {
    "standard": {"mix": {"name": None}},
    "bc": {"mix": {"name": "bc"}, "label": {"options": {"loss": "kl"}}},
    "bc_plus": {"mix": {"name": "bc_plus"}, "label": {"options": {"loss": "kl"}}},
    "bc_single": {"mix": {"name": "bc_single"}},
    "mixup": {"mix": {"name": "mixup", "options": {"alpha": 1.0}}, "label": {"options": {"loss": "kl"}}},
}


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) and v else v
    return out


def run_one(args, method: str, seed: int) -> dict:
    cfg = merge({
        "data": {"dataset": "cifar10", "data_dir": args.data_dir, "fraction": args.fraction},
        "model": {"name": args.model},
        "optim": {"lr": args.lr, "batch_size": args.batch_size},
        "train": {"epochs": args.epochs, "seed": seed, "device": args.device, "checkpoint": False},
    }, METHODS[method])
    result = train(cfg)
    history = result.history
    numbers = [v for r in history for v in r.values() if isinstance(v, float)]
    row = {"method": method, "seed": seed, "test_accuracy": result.summary["test_accuracy"],
           "final_train_loss": result.summary["final_train_loss"], "train_images": result.summary["train_images"],
           "seconds": result.summary["seconds"], "all_finite": all(math.isfinite(v) for v in numbers),
           "test_accuracy_per_epoch": [r["test_accuracy"] for r in history]}
    model = result.parts.model
    if hasattr(model.encoder, "encoder"):  # BC+: the same weights scored on uncentred test images
        centred = model.encoder
        model.encoder = centred.encoder
        row["test_accuracy_uncentred"] = accuracy(model, result.parts.label_space,
                                                  result.parts.loader(result.parts.data.test))
        model.encoder = centred
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/root/data/cifar10")
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--model", default="fastnet")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--json", default="bc-cifar10.json", help="results file (finished runs are skipped)")
    args = p.parse_args()

    path = Path(args.json)
    rows = json.loads(path.read_text()) if path.is_file() else []
    key = dict(fraction=args.fraction, epochs=args.epochs, model=args.model, lr=args.lr, batch_size=args.batch_size)
    done = {(r["method"], r["seed"]) for r in rows if all(r.get(k) == v for k, v in key.items())}
    for seed in args.seeds:  # seed-major: a cut-short measurement still has every method once
        for method in args.methods:
            if (method, seed) in done:
                continue
            start = time.time()
            row = {**run_one(args, method, seed), **key, "threads": torch.get_num_threads()}
            rows.append(row)
            atomic_write_text(path, json.dumps(rows, indent=1))
            print(f"{method:10s} seed {seed}: test accuracy {row['test_accuracy']:.4f}"
                  + (f" (uncentred {row['test_accuracy_uncentred']:.4f})" if "test_accuracy_uncentred" in row else "")
                  + f", finite {row['all_finite']}, {time.time() - start:.0f} s", flush=True)

    print(f"\n{args.model}, CIFAR-10 fraction {args.fraction}, {args.epochs} epochs; test accuracy on 10,000 images")
    print(f"{'method':10s} {'seeds':>5s} {'mean':>7s} {'spread':>7s}  per seed")
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method and all(r.get(k) == v for k, v in key.items())]
        if not mine:
            continue
        accs = [r["test_accuracy"] for r in mine]
        spread = (max(accs) - min(accs)) / 2
        print(f"{method:10s} {len(accs):5d} {statistics.mean(accs):7.4f} {spread:7.4f}  "
              + " ".join(f"{a:.4f}" for a in accs) + ("" if all(r["all_finite"] for r in mine) else "  NON-FINITE"))


if __name__ == "__main__":
    main()
