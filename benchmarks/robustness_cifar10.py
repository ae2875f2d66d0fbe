"""Robustness and data efficiency of label spaces on CIFAR-10, side by side (issue 3's measurement).

For each label space, trained the same way (fastnet, SGD, same steps):

1. robustness: one run on a class-balanced fraction of the training set; accuracy under FGSM, BIM
   and PGD at several eps (1/255 units) on a fixed set of test images, under the paper protocol
   (training-loss gradient, only correct images attacked) and the strong one (CE and margin on
   scores); the worst case per protocol and the paper-minus-strong gap (gradient masking);
2. geometry: silhouette and k-NN accuracy of the encoder's features of fixed test images at
   10/30/50/70/100 % of that run's training (t-SNE rows), and its calibration (ECE, fitted T);
3. data efficiency: runs at 1/2/4/8 % of the training set, several seeds, the same number of
   optimiser steps; test accuracy on a fixed set of test images.

The training loop measures test accuracy after every epoch on the whole test split; to keep this
CPU-sized, training sees a stand-in test split of 10 images a class (source ``cifar10_monitor``)
and the real evaluation images are scored once at the end.

Results go to OUT/rows.jsonl (tidy rows, appended as they come; a rerun skips what is done),
OUT/report.md (tables) and OUT/*.png (figures).

    OMP_NUM_THREADS=1 python benchmarks/robustness_cifar10.py --out /tmp/robust --data-dir /root/data/cifar10
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from labelrep.cli.common import table
from labelrep.data.sources import DATASETS, ImageData, load_dataset
from labelrep.evaluate.accuracy import accuracy
from labelrep.evaluate.efficiency import efficiency_table, plot_efficiency, run_sweep
from labelrep.evaluate.features import FeatureSnapshots, load_snapshots, plot_tsne
from labelrep.evaluate.robustness import (curve_table, evaluation_images, masking_gaps, plot_curves,
                                          robust_accuracy)

DATA_DIR = "/root/data/cifar10"


@functools.lru_cache(maxsize=None)
def full_cifar10(data_dir: str) -> ImageData:
    return load_dataset("cifar10", data_dir)


@DATASETS.register("cifar10_monitor", "CIFAR-10 whose test split is 10 images a class (a cheap per-epoch monitor)")
def cifar10_monitor(data_dir=None, download=False) -> ImageData:
    data = full_cifar10(str(data_dir or DATA_DIR))
    keep = np.concatenate([np.flatnonzero(data.test.labels == c)[:10] for c in range(len(data.classes))])
    return ImageData("cifar10", data.classes, data.train, data.test.take(np.sort(keep)), dict(data.augment))


def eval_split(data_dir: str, n: int):
    test = full_cifar10(data_dir).test
    return test.take(evaluation_images(len(test), n, seed=0))


def base_config(args) -> dict:
    return {"data": {"dataset": "cifar10_monitor", "data_dir": args.data_dir},
            "model": {"name": args.model, "options": {"widths": [int(w) for w in args.widths.split(",")]}
                      if args.model == "fastnet" else {}},
            "train": {"device": "cpu", "checkpoint": True},
            "optim": {"batch_size": args.batch_size, "lr": args.lr}}


def label_options(args, label: str) -> dict:
    return json.loads(args.label_options).get(label, {})


def done_keys(rows_file: Path) -> set:
    if not rows_file.is_file():
        return set()
    return {json.loads(line)["key"] for line in rows_file.read_text().splitlines() if line.strip()}


def append_rows(rows_file: Path, key: str, rows: list[dict]) -> None:
    with rows_file.open("a") as f:  # one write: two stages may append to the same file at once
        f.write("".join(json.dumps({**r, "key": key}) + "\n" for r in rows))


def log(*msg) -> None:
    print(time.strftime("%H:%M:%S"), *msg, file=sys.stderr, flush=True)


def robust_config(args, label: str) -> dict:
    from labelrep import config as config_mod
    from labelrep.evaluate.efficiency import epochs_for_steps, train_size

    cfg = config_mod.resolve(base_config(args), {"label": {"name": label, "options": label_options(args, label)},
                                                  "data": {"fraction": args.robust_fraction},
                                                  "train": {"seed": 0}})
    cfg["train"]["epochs"] = epochs_for_steps(train_size(cfg), cfg["optim"]["batch_size"], args.robust_steps)
    return cfg


def snapshot_file(args, label: str, train_if_missing: bool) -> Path | None:
    """The robustness run's feature snapshots; a run trained before snapshots existed is retrained with
    them into snap-LABEL (CPU training repeats exactly and the hooks do not change it: same model)."""
    from labelrep.train import train

    runs = Path(args.out) / "runs"
    for folder in (runs / f"robust-{label}", runs / f"snap-{label}"):
        if (folder / "features.npz").is_file():
            return folder / "features.npz"
    if not train_if_missing:
        return None
    folder = runs / f"snap-{label}"
    snaps = FeatureSnapshots(images=args.feature_images, out=folder, split=eval_split(args.data_dir, args.eval_images))
    train(robust_config(args, label), out=folder, resume=True, hooks=snaps)
    return folder / "features.npz"


def robustness_stage(args, label: str, rows_file: Path) -> None:
    from labelrep.run import load_run
    from labelrep.train import train

    key = f"robustness/{label}"
    if key in done_keys(rows_file):
        return
    cfg = robust_config(args, label)
    folder = Path(args.out) / "runs" / f"robust-{label}"
    t0 = time.perf_counter()
    if (folder / "summary.json").is_file():
        parts = load_run(folder).parts
    else:  # features of fixed test images at 10/30/50/70/100 % of training, for the geometry stage
        snaps = FeatureSnapshots(images=args.feature_images, out=folder,
                                 split=eval_split(args.data_dir, args.eval_images))
        parts = train(cfg, out=folder, resume=True, hooks=snaps).parts
    train_s = time.perf_counter() - t0
    test = eval_split(args.data_dir, args.attack_images)
    t0 = time.perf_counter()
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images),
                           torch.as_tensor(test.labels), protocols=["paper", "strong"],
                           attacks={"paper": args.paper_attacks, "strong": args.strong_attacks},
                           eps=args.eps, steps=args.steps, restarts=args.restarts, autoattack=None, seed=0)
    attack_s = time.perf_counter() - t0
    for r in rows:
        r.update(label=label, epochs=cfg["train"]["epochs"], fraction=args.robust_fraction)
    rows.append({"metric": "seconds", "value": train_s, "label": label, "stage": "robustness-train"})
    rows.append({"metric": "seconds", "value": attack_s, "label": label, "stage": "robustness-attack"})
    append_rows(rows_file, key, rows)
    clean = [r["value"] for r in rows if r.get("attack") == "none"][0]
    log(f"robustness {label}: clean {clean:.3f}, train {train_s:.0f} s, attacks {attack_s:.0f} s")


def stress_stage(args, label: str, rows_file: Path) -> None:
    """A much stronger attack on the robustness run (which must exist): PGD with more steps and random
    restarts on the margin, CE and DLR of the scores, plus AutoAttack's two APGD runs (pyautoattack). If a label space's robustness under the strong protocol was gradient masking, it falls here."""
    from labelrep.run import load_run

    key = f"stress/{label}"
    folder = Path(args.out) / "runs" / f"robust-{label}"
    if key in done_keys(rows_file) or not (folder / "summary.json").is_file():
        return
    parts = load_run(folder).parts
    test = eval_split(args.data_dir, args.stress_images)
    try:
        import pyautoattack  # noqa: F401
        aa = "apgd"
    except ImportError:
        aa = None
    t0 = time.perf_counter()
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images),
                           torch.as_tensor(test.labels), protocols=["strong"], attacks={"strong": ["pgd"]},
                           eps=args.stress_eps, steps=args.stress_steps, restarts=args.stress_restarts,
                           autoattack=aa, seed=1)
    name = f"strong-pgd{args.stress_steps}x{args.stress_restarts}" + ("+apgd" if aa else "")
    for r in rows:
        r.update(label=label, protocol=name)
    rows.append({"metric": "seconds", "value": time.perf_counter() - t0, "label": label, "stage": "stress"})
    append_rows(rows_file, key, rows)
    log(f"stress {label}: {time.perf_counter() - t0:.0f} s")


def geometry_stage(args, label: str, rows_file: Path) -> None:
    """Feature geometry per training fraction and calibration of the robustness run (which must exist)."""
    from labelrep.evaluate.accuracy import predict_scores
    from labelrep.evaluate.calibration import calibration
    from labelrep.evaluate.features import geometry_rows, load_snapshots
    from labelrep.run import load_run

    key = f"geometry/{label}"
    folder = Path(args.out) / "runs" / f"robust-{label}"
    if key in done_keys(rows_file) or not (folder / "summary.json").is_file():
        return
    rows = []
    snaps, labels = load_snapshots(snapshot_file(args, label, train_if_missing=True))
    rows += geometry_rows(snaps, labels)
    parts = load_run(folder).parts
    test = eval_split(args.data_dir, args.eval_images)
    scores = predict_scores(parts.model, parts.label_space, parts.loader(test)).cpu()
    y = torch.as_tensor(test.labels)
    half = len(y) // 2  # the eval images are a seeded random choice: fit T on one half, measure on the other
    cal, _ = calibration(scores[:half], y[:half], scores[half:], y[half:])
    rows += cal
    for r in rows:
        r["label"] = label
    append_rows(rows_file, key, rows)
    log(f"geometry {label}: {len(rows)} rows")


def efficiency_stage(args, label: str, rows_file: Path) -> None:
    done = done_keys(rows_file)
    test = eval_split(args.data_dir, args.eval_images)
    base = base_config(args)
    base["label"] = {"options": label_options(args, label)}

    def score(parts) -> float:
        return accuracy(parts.model, parts.label_space, parts.loader(test))

    for fraction in args.fractions:
        for seed in args.seeds:
            key = f"efficiency/{label}/{fraction:g}/{seed}"
            if key in done:
                continue
            t0 = time.perf_counter()
            rows = run_sweep(base, [label], [fraction], [seed], out=Path(args.out) / "runs", steps=args.eff_steps,
                             score=score)
            for r in rows:
                r.update(eval_images=len(test), seconds=time.perf_counter() - t0)
            append_rows(rows_file, key, rows)
            log(f"efficiency {label} {fraction:g} seed {seed}: {rows[0]['value']:.3f} "
                f"({rows[0]['train_images']} images, {rows[0]['epochs']} epochs, {time.perf_counter() - t0:.0f} s)")


def report(args, rows_file: Path) -> str:
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    out = Path(args.out)
    lines = ["# Label spaces on CIFAR-10 (JPEG copy): robustness and data efficiency\n",
             f"command: {' '.join(sys.argv)}\n"]
    adv = [r for r in rows if r["metric"] == "adversarial_accuracy" and r["protocol"] in ("paper", "strong")]
    if adv:
        n = adv[0]["images"]
        lines.append(f"## Accuracy under attack ({n} test images; eps in 1/255 of the pixel range)\n")
        h, body = curve_table(adv, group="label")
        lines += ["```", table(h, body), "```\n"]
        lines.append("## Worst case per protocol and the gap (paper minus strong; large = gradient masking)\n")
        gaps = masking_gaps(adv, group="label")
        lines += ["```", table(["label", "eps", "paper", "strong", "gap"],
                               [[g["group"], g["eps"], g["paper"], g["strong"], g["gap"]] for g in gaps]), "```\n"]
        lines.append("## Share of the correctly classified images that survive (worst case / clean accuracy)\n")
        clean = {r["label"]: r["value"] for r in adv if r["attack"] == "none" and r["protocol"] == "paper"}
        eps = sorted({r["eps"] for r in adv if r["attack"] == "worst"})
        worst = {(r["label"], r["protocol"], r["eps"]): r["value"] for r in adv if r["attack"] == "worst"}
        lines += ["```", table(["label", "clean"] + [f"{p} {e:g}/255" for p in ("paper", "strong") for e in eps],
                               [[g, c] + [worst[(g, p, e)] / c if c and (g, p, e) in worst else ""
                                          for p in ("paper", "strong") for e in eps]
                                for g, c in sorted(clean.items())]), "```\n"]
        plot_curves(adv, out / "robustness.png", group="label", title=f"CIFAR-10, {args.model}: worst case per protocol")
        plot_curves([r for r in adv if r["attack"] in ("none", "fgsm")], out / "robustness-fgsm.png", group="label",
                    attacks=("fgsm",), title=f"CIFAR-10, {args.model}: FGSM")
    stress = [r for r in rows if r["metric"] == "adversarial_accuracy" and r["protocol"].startswith("strong-")]
    if stress:
        lines.append(f"## Stress test ({stress[0]['images']} of those images; PGD with more steps and restarts, "
                     "CE and margin, AutoAttack's APGD-CE and APGD-DLR; compare with the worst cases above)\n")
        h, body = curve_table(stress, group="label")
        lines += ["```", table(h, body), "```\n"]
    eff = [r for r in rows if r["metric"] == "test_accuracy"]
    if eff:
        lines.append(f"## Data efficiency (test accuracy on {eff[0]['eval_images']} test images; "
                     f"mean ± std over seeds; {args.eff_steps} SGD steps per run)\n")
        h, body = efficiency_table(eff)
        lines += ["```", table(h, body), "```\n"]
        plot_efficiency(eff, out / "efficiency.png", title=f"CIFAR-10, {args.model}")
    geo = [r for r in rows if r["metric"] in ("silhouette", "knn_accuracy")]
    if geo:
        lines.append(f"## Feature geometry during training ({geo[0]['images']} fixed test images; "
                     "silhouette / 10-NN accuracy, 5-fold)\n")
        cells = {}
        for r in geo:
            cells.setdefault(r["label"], {}).setdefault(r["fraction"], {})[r["metric"]] = r["value"]
        fr = sorted({r["fraction"] for r in geo})
        lines += ["```", table(["label"] + [f"{100 * f:g} %" for f in fr],
                               [[g] + [f"{c[f]['silhouette']:.3f} / {c[f]['knn_accuracy']:.3f}" if f in c else ""
                                       for f in fr] for g, c in sorted(cells.items())]), "```\n"]
        snapshots = {}
        for g in sorted(cells):
            f = snapshot_file(args, g, train_if_missing=False)
            if f is not None:
                snapshots[g] = load_snapshots(f)
        if snapshots and not args.no_tsne:
            plot_tsne(snapshots, out / "tsne.png", classes=full_cifar10(args.data_dir).classes)
    cal = [r for r in rows if r["metric"] in ("ece", "nll", "temperature", "accuracy") and "label" in r
           and r.get("protocol") is None]
    if cal:
        lines.append(f"## Calibration (softmax(scores / T); T fitted on one half of the {args.eval_images} eval "
                     "images, measured on the other)\n")
        by = {}
        for r in cal:
            by.setdefault(r["label"], {})[(r["metric"], r.get("temperature"))] = r["value"]
        lines += ["```", table(["label", "accuracy", "ECE T=1", "ECE fitted", "NLL T=1", "NLL fitted", "T"],
                               [[g, v[("accuracy", None)], v[("ece", "1")], v[("ece", "fitted")], v[("nll", "1")],
                                 v[("nll", "fitted")], v[("temperature", "fitted")]] for g, v in sorted(by.items())]),
                  "```\n"]
    secs = [r for r in rows if r["metric"] == "seconds"]
    if secs:
        lines += ["## Seconds\n", "```", table(["label", "stage", "seconds"],
                                               [[r["label"], r["stage"], round(r["value"])] for r in secs]), "```\n"]
    text = "\n".join(lines)
    tmp = out / ".report.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "report.md")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/labelrep-robust")
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--labels", nargs="+", default=["categorical", "speech", "composite", "random", "constant"])
    p.add_argument("--label-options", default="{}", help='JSON: {"speech": {"voice": "paper", ...}}')
    p.add_argument("--stages", nargs="+", default=["robustness", "geometry", "efficiency"],
                   choices=["robustness", "geometry", "stress", "efficiency"])
    p.add_argument("--model", default="fastnet")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--robust-fraction", type=float, default=0.1)
    p.add_argument("--robust-steps", type=int, default=200)
    p.add_argument("--attack-images", type=int, default=1000)
    p.add_argument("--paper-attacks", nargs="+", default=["fgsm", "bim"])
    p.add_argument("--strong-attacks", nargs="+", default=["fgsm", "pgd"])
    p.add_argument("--widths", default="16,32,64", help="fastnet widths")
    p.add_argument("--eps", nargs="+", type=float, default=[1, 2, 4, 8])  # ~ the paper's 0.05..0.3 normalised
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.02, 0.04, 0.08])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--eff-steps", type=int, default=100)
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--stress-images", type=int, default=500, help="the first of the attack images")
    p.add_argument("--stress-eps", nargs="+", type=float, default=[4, 8])
    p.add_argument("--stress-steps", type=int, default=50)
    p.add_argument("--stress-restarts", type=int, default=3)
    p.add_argument("--feature-images", type=int, default=500)
    p.add_argument("--no-tsne", action="store_true")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_file = out / "rows.jsonl"
    if not args.report_only:
        for stage in args.stages:
            for label in args.labels:
                {"robustness": robustness_stage, "geometry": geometry_stage, "stress": stress_stage,
                 "efficiency": efficiency_stage}[stage](args, label, rows_file)
    print(report(args, rows_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
