"""The tables of ``benchmarks/results/human_noisy_longtail.md`` from the three study folders.

    labelrep study configs/cifar10h-soft-cpu.yaml --data-dir CIFAR10 --out runs/c10h
    labelrep study configs/cifar10n-noisy-cpu.yaml --data-dir CIFAR10 --out runs/noisy
    labelrep study configs/cifar10-longtail-cpu.yaml --data-dir CIFAR10 --out runs/longtail
    python benchmarks/human_noisy_longtail.py --c10h runs/c10h --noisy runs/noisy --longtail runs/longtail

Each cell: mean ± half-width of the 95 % confidence interval (Student t) over the seeds, then the
per-seed values; read straight from the run folders (``labelrep.study.report.collect``).
"""
from __future__ import annotations

import argparse

from labelrep.study.report import collect, mean_ci


def _values(data, cell: dict, evaluation: str, metric: str, **keys) -> list[float]:
    rows = [r for r in data.rows if r["evaluation"] == evaluation and r["metric"] == metric
            and all(r.get(a) == v for a, v in cell.items()) and all(r.get(k) == v for k, v in keys.items())]
    return [float(r["value"]) for r in sorted(rows, key=lambda r: r["seed"])]


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "—"
    mean, ci = mean_ci(values)
    each = " ".join(f"{v * scale:.{digits}f}" for v in values)
    ci_text = f" ± {ci * scale:.{digits}f}" if ci is not None else ""
    return f"{mean * scale:.{digits}f}{ci_text} ({each})"


def _table(headers: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def c10h_table(folder: str) -> str:
    data = collect(folder)
    lines = []
    for targets in ("hard", "soft"):
        cell = {"targets": targets}
        lines.append([targets,
                      _fmt(_values(data, cell, "soft_labels", "accuracy", split="test")),
                      _fmt(_values(data, cell, "soft_labels", "target_ce", split="test"), 1.0, 3),
                      _fmt(_values(data, cell, "soft_labels", "ece", split="test")),
                      _fmt(_values(data, cell, "soft_labels", "accuracy", split="cifar10_train")),
                      _fmt(_values(data, cell, "soft_labels", "ece", split="cifar10_train")),
                      _fmt(_values(data, cell, "soft_labels", "nll", split="cifar10_train"), 1.0, 3)])
    return _table(["targets", "held-out accuracy %", "human CE (nats)", "held-out ECE %",
                   "CIFAR-10 train accuracy %", "CIFAR-10 train ECE %", "CIFAR-10 train NLL"], lines)


def noisy_table(folder: str) -> str:
    data = collect(folder)
    sets = ("clean", "aggre", "worse")
    lines = []
    for loss in ("ce", "gce", "sce", "smoothing"):
        lines.append([loss, *(_fmt(_values(data, {"loss": loss, "data.train_labels": s}, "training", "test_accuracy"))
                              for s in sets)])
    return _table(["loss", *(f"{s} labels: test accuracy %" for s in sets)], lines)


def longtail_table(folder: str) -> str:
    data = collect(folder)
    lines = []
    for loss in ("softmax", "cb_softmax", "cb_focal"):
        cell = {"loss": loss}
        lines.append([loss, _fmt(_values(data, cell, "training", "test_accuracy")),
                      *(_fmt(_values(data, cell, "per_class", "group_accuracy", group=g))
                        for g in ("head", "middle", "tail"))])
    return _table(["loss", "test accuracy %", "head (4 classes) %", "middle (3) %", "tail (3) %"], lines)


def class_table(folder: str) -> str:
    data = collect(folder)
    classes = [r["class"] for r in data.rows if r["metric"] == "class_accuracy" and r["seed"] == 0
               and r.get("loss") == "softmax"]
    counts = {r["class"]: r["train_images"] for r in data.rows if r["metric"] == "class_accuracy"}
    lines = []
    for loss in ("softmax", "cb_softmax", "cb_focal"):
        lines.append([loss, *(f"{100 * sum(v) / len(v):.1f}" if (v := _values(data, {"loss": loss}, "per_class",
                                                                              "class_accuracy", **{"class": c}))
                              else "—" for c in classes)])
    return _table(["loss", *(f"{c} ({counts[c]})" for c in classes)], lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--c10h"), p.add_argument("--noisy"), p.add_argument("--longtail")
    args = p.parse_args()
    if args.c10h:
        print("## CIFAR-10H\n\n" + c10h_table(args.c10h) + "\n")
    if args.noisy:
        print("## CIFAR-10N\n\n" + noisy_table(args.noisy) + "\n")
    if args.longtail:
        print("## Long tail\n\n" + longtail_table(args.longtail) + "\n\nPer class (mean over seeds; training images "
              "in brackets):\n\n" + class_table(args.longtail) + "\n")


if __name__ == "__main__":
    main()
