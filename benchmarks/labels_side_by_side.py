"""Side-by-side run of the label spaces of "Beyond Categorical Label Representations" on CIFAR-10.

Same encoder, seeds, subsets and budget for every label space; one run folder per label space and
seed under --out, named ``<label><tag>-seed<N>`` (a finished run is skipped, so the script resumes and
a second call only prints). Prints one row per run, then the mean and standard deviation over the seeds
of each label space.

Each run tests once, after its last epoch, on the whole test split (10,000 images);
``--test-per-class N`` cuts it to the first N images a class in CIFAR-10's order, through an image
folder of symbolic links built in --work. Of the training set, ``--fraction`` is used
(class-balanced, drawn with the run's seed, as ``labelrep train --fraction``). There is no
validation split by default (``--val-size``): the figures are the last epoch's.

    # DIR: CIFAR-10 as an image folder (train/, test/, *_order.txt) or the python pickles
    OMP_NUM_THREADS=1 python benchmarks/labels_side_by_side.py --data-dir DIR --epochs 15 --seeds 0,1,2 \
        --out /tmp/labels-e15
    # a variant, e.g. label scaling, in its own folders (a tag starting with "-" needs the "=")
    OMP_NUM_THREADS=1 python benchmarks/labels_side_by_side.py --data-dir DIR --labels glove --epochs 15 \
        --label-set scale=20 --tag=-scale20 --out /tmp/labels-e15

The commands behind every figure of benchmarks/results/labels_side_by_side.md are listed there.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ALL = ["categorical", "speech", "shuffled", "composite", "random", "constant", "lowdim", "bert", "glove"]


def subset_folder(data_dir: Path, work: Path, test_per_class: int) -> Path:
    """An image folder: train -> the full training folder, test -> the first N test images a class."""
    from labelrep.files import atomic_write_text

    root = work / f"cifar10-test{test_per_class}"
    if (root / "test_order.txt").is_file():
        return root
    (root / "test").mkdir(parents=True, exist_ok=True)
    if not (root / "train").exists():
        (root / "train").symlink_to((data_dir / "train").resolve(), target_is_directory=True)
        os.symlink((data_dir / "train_order.txt").resolve(), root / "train_order.txt")
    counts: dict[str, int] = {}
    keep = []
    for line in (data_dir / "test_order.txt").read_text().split():
        cls = Path(line).parent.name
        if counts.get(cls, 0) < test_per_class:
            counts[cls] = counts.get(cls, 0) + 1
            keep.append(line)
            dest = root / line
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.symlink_to((data_dir / line).resolve())
    atomic_write_text(root / "test_order.txt", "\n".join(keep) + "\n")
    return root


def label_options(name: str, speech_dir: str) -> dict:
    if name in ("speech", "shuffled"):
        return {"voice": "paper", "speech_dir": speech_dir}
    return {}


def run_one(name: str, seed: int, args, data_dir: Path, extra: dict, label_extra: dict, run_dir: Path) -> dict:
    """Train one label space with one seed (or read the finished run) and return its summary."""
    from labelrep import config as config_mod
    from labelrep.labels.regression import threshold_accuracy
    from labelrep.train import train
    from labelrep.files import atomic_write_json

    if (run_dir / "summary.json").is_file():
        return json.loads((run_dir / "summary.json").read_text())
    cfg = config_mod.resolve({
        "data": {"dataset": "cifar10", "data_dir": str(data_dir), "fraction": args.fraction, "val_size": args.val_size},
        "label": {"name": name, "options": {**label_options(name, args.speech_dir), **label_extra}},
        "model": {"name": args.model},
        "train": {"epochs": args.epochs, "seed": seed, "checkpoint": False, "eval_every": args.epochs},
    }, extra)
    result = train(cfg, out=run_dir, resume=True)
    summary = result.summary
    if hasattr(result.parts.label_space, "threshold"):
        parts = result.parts
        summary["threshold_accuracy"] = threshold_accuracy(parts.model, parts.label_space, parts.loader(parts.data.test))
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True,
                   help="CIFAR-10: pickles or an image folder (train/, test/, *_order.txt; --test-per-class needs one)")
    p.add_argument("--speech-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-speech"))
    p.add_argument("--labels", default=",".join(ALL), help="comma-separated label spaces")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--model", default="fastnet")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each also draws its own subset")
    p.add_argument("--val-size", type=int, default=0, help="validation hold-out (0: none)")
    p.add_argument("--test-per-class", type=int, default=0, help="test images a class (0: the full test set)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--label-set", action="append", default=[], metavar="KEY=VALUE",
                   help="label option for every run, e.g. scale=0.0125")
    p.add_argument("--tag", default="", help="suffix of the run folder names")
    p.add_argument("--work", default="/tmp/labelrep-bench")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    from labelrep import config as config_mod

    data_dir = Path(args.data_dir)
    if args.test_per_class:
        data_dir = subset_folder(data_dir, Path(args.work), args.test_per_class)
    extra = config_mod.parse_overrides(args.set)
    label_extra = config_mod.parse_overrides(args.label_set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    accuracies: dict[str, list[float]] = {}
    for name in args.labels.split(","):
        for seed in seeds:
            summary = run_one(name, seed, args, data_dir, extra, label_extra, out / f"{name}{args.tag}-seed{seed}")
            row = {"label": name + args.tag, "seed": seed, "epochs": summary["epochs"],
                   "train_images": summary["train_images"], "test_images": summary["test_images"],
                   "test_accuracy": round(summary["test_accuracy"], 4),
                   "threshold_accuracy": (round(summary["threshold_accuracy"], 4) if "threshold_accuracy" in summary
                                          else None),  # categorical has no threshold rule
                   "train_seconds": round(summary["train_seconds"], 1)}
            print(json.dumps(row), flush=True)
            accuracies.setdefault(name + args.tag, []).append(summary["test_accuracy"])
    for label, accs in accuracies.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else None
        print(json.dumps({"label": label, "epochs": args.epochs, "seeds": len(accs),
                          "mean_test_accuracy": round(statistics.mean(accs), 4),
                          "sd": round(sd, 4) if sd is not None else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
