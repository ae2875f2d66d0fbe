"""The strong protocol against the reference AutoAttack on a regressed-label (speech) digits model.

Trains the digits model of ``tests/test_evaluate_fidelity.py`` (fastnet [16, 32, 64], espeak speech
labels, 5 epochs, batch 32, seed 0), then on the first N test images and each eps prints: the paper
protocol's worst case, the strong protocol's own attacks alone (FGSM/BIM/PGD with non-saturating CE,
margin and DLR; no AutoAttack), the reference AutoAttack run on its own (pyautoattack, standard, on the
label space's scores), the strong worst case (everything, AutoAttack included) and the masking flags.

    OMP_NUM_THREADS=1 python benchmarks/robustness_reference.py --images 150 --eps 8 16
"""
from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=150)
    p.add_argument("--eps", nargs="+", type=float, default=[8.0, 16.0])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from labelrep.evaluate.robustness import reference_autoattack, robust_accuracy
    from labelrep.train import train

    # the paper's recipe (Huber alone): the one whose saturating scores the strong protocol must see through
    run = train({"data": {"dataset": "digits"}, "label": {"name": "speech", "options": {"recipe": "paper"}},
                 "model": {"name": "fastnet", "options": {"widths": [16, 32, 64]}},
                 "optim": {"batch_size": 32}, "train": {"epochs": 5, "device": "cpu", "seed": 0}})
    parts = run.parts
    x = torch.as_tensor(parts.data.test.images[:args.images])
    y = torch.as_tensor(parts.data.test.labels[:args.images])
    for e in args.eps:
        rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, x, y, protocols=["paper", "strong"],
                               eps=[e], autoattack="standard")
        get = {(r["metric"], r["protocol"], r["attack"], r["loss"]): r["value"] for r in rows}
        ours = min(v for (m, p, a, _), v in get.items() if m == "adversarial_accuracy" and p == "strong"
                   and a in ("fgsm", "bim", "pgd"))
        reference = reference_autoattack(parts.model, parts.label_space, parts.normalize, x, y, e)
        print(json.dumps({
            "eps": e, "images": len(y), "clean": get[("adversarial_accuracy", "strong", "none", "none")],
            "paper_worst": get[("adversarial_accuracy", "paper", "worst", "any")],
            "strong_best_single_own_attack": ours,
            "reference_autoattack": reference,
            "strong_worst": get[("adversarial_accuracy", "strong", "worst", "any")],
            "strong_minus_reference": get[("adversarial_accuracy", "strong", "worst", "any")] - reference,
            "flags": {r["metric"] + ("/" + r["loss"] if r["metric"] == "zero_grad_fraction" else ""): r["value"]
                      for r in rows if r["metric"] != "adversarial_accuracy"}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
