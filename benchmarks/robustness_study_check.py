"""Compare the rows of the old robustness benchmark script with those of its study (issue 13, part 6).

The old script (``git show 1a0702f:benchmarks/robustness_cifar10.py``) ran its own stages and wrote
OLD/rows.jsonl; ``configs/robustness-cifar10-check.yaml`` says the same runs as a study. Every number
is matched on its locating keys and compared exactly; the table goes to
benchmarks/results/robustness-study-check.md.

    python benchmarks/robustness_study_check.py OLD/rows.jsonl STUDY_FOLDER
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def keyed_old(rows: list[dict]) -> dict[tuple, float]:
    out = {}
    for r in rows:
        stage = r["key"].split("/")[0]
        if r["metric"] == "seconds":
            continue
        if stage in ("robustness", "stress"):
            key = (stage, r["label"], r["attack"], r["loss"], r["eps"])
        elif stage == "geometry" and r["metric"] in ("silhouette", "knn_accuracy"):
            key = ("geometry", r["label"], r["metric"], r["fraction"])
        elif stage == "geometry":
            key = ("calibration", r["label"], r["metric"], r.get("temperature"))
        else:
            key = ("efficiency", r["label"], r["fraction"], r["seed"])
        if stage == "robustness":
            key = (*key, r["protocol"])
        out[key] = r["value"]
    return out


def keyed_new(folder: Path) -> dict[tuple, float]:
    plan = json.loads((folder / "plan.json").read_text())
    kinds = {}
    for ev in plan["evaluations"]:
        kind = ev["name"]
        if kind == "robustness":
            kind = "robustness" if "paper" in ev["options"]["protocols"] else "stress"
        kinds[ev["key"]] = kinds[ev["name"]] = kind
    out = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        kind = kinds.get(r["evaluation"])
        if kind in ("robustness", "stress"):
            key = (kind, r["label"], r["attack"], r["loss"], r["eps"]) + ((r["protocol"],) if kind == "robustness" else ())
        elif kind == "features":
            key = ("geometry", r["label"], r["metric"], r["fraction"])
        elif kind == "calibration":
            key = ("calibration", r["label"], r["metric"], r.get("temperature"))
        elif kind == "accuracy":
            key = ("efficiency", r["label"], float(r["stage"].lstrip("f")), r["seed"])
        else:
            continue
        out[key] = r["value"]
    return out


def main(old_file: str, study: str) -> int:
    old = keyed_old([json.loads(x) for x in Path(old_file).read_text().splitlines() if x.strip()])
    new = keyed_new(Path(study))
    lines = ["| part | label | where | old script | study | equal |", "|---|---|---|---:|---:|---|"]
    same = {}
    for key in sorted(old, key=str):
        a, b = old[key], new.get(key)
        same.setdefault(key[0], []).append(a == b)
        lines.append(f"| {key[0]} | {key[1]} | {' '.join(map(str, key[2:]))} | {a!r} | {b!r} | "
                     f"{'yes' if a == b else 'NO'} |")
    missing = sorted(set(new) - set(old), key=str)
    summary = [f"- {part}: {sum(v)} of {len(v)} numbers identical" for part, v in same.items()]
    text = "\n".join(summary + ([f"- {len(missing)} study numbers the old script did not produce"] if missing else [])
                     + ["", *lines])
    print(text)
    return 0 if all(all(v) for part, v in same.items() if part != "calibration") else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
