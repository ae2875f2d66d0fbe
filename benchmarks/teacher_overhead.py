"""Cost of a teacher target: a student's training step with a frozen teacher against the same
student's plain step (ground-truth table), as a ratio, in one process.

The teacher has the student's architecture (a born-again or refinery generation), so its forward
pass is about a third of the student's forward + backward: the ratio should sit near 1.33 and must
stay at or below 1.5. The three loops (plain, teacher in eval mode, teacher in the official train
mode) alternate round by round so that load on the machine hits them alike; each is timed over the
steps of one epoch after a few warm-up steps (the loop's own code, hooks timestamping the steps),
and stopped before it tests.

    python benchmarks/teacher_overhead.py --data-dir /work/data/cifar10 [--fraction 0.1 --threads 1 --rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import labelrep
from labelrep import config as config_mod
from labelrep.train import Hooks

WARMUP = 3


class _Timed(Exception):
    """Raised by the hook after the last timed step: the loop stops before testing."""


class StepClock(Hooks):
    def __init__(self, steps: int):
        self.steps, self.stamps = steps, []

    def on_step(self, epoch, step):
        self.stamps.append(time.perf_counter())
        if len(self.stamps) == self.steps:
            raise _Timed


def seconds_per_step(config: dict, steps: int) -> float:
    clock = StepClock(steps)
    try:
        labelrep.train(config, hooks=clock)
    except _Timed:
        pass
    return (clock.stamps[-1] - clock.stamps[WARMUP - 1]) / (steps - WARMUP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 (pickles or image folder)")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--widths", type=int, nargs="*", default=[16, 32, 64], help="fastnet widths")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"widths": args.widths} if args.model == "fastnet" else {}
    base = config_mod.resolve({
        "data": {"dataset": "cifar10", "data_dir": args.data_dir, "fraction": args.fraction},
        "model": {"name": args.model, "options": options}, "optim": {"batch_size": args.batch_size},
        "train": {"epochs": 1, "device": "cpu"},
    })
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher"
        # One epoch: a teacher's weights do not change what its forward pass costs.
        steps = len(labelrep.train(base, out=teacher).parts.train) // args.batch_size
        configs = {"plain": base}
        for mode in ("eval", "train"):
            configs[f"teacher ({mode} mode)"] = config_mod.resolve(
                base, {"target": {"name": "teacher", "options": {"run": str(teacher), "mode": mode}}})
        times: dict[str, list[float]] = {name: [] for name in configs}
        for r in range(args.rounds):
            for name, cfg in configs.items():
                times[name].append(seconds_per_step(cfg, steps))
            print(f"round {r + 1}: " + "   ".join(f"{n} {t[-1] * 1e3:.0f} ms/step" for n, t in times.items()),
                  flush=True)
    plain = statistics.median(times["plain"])
    print(f"{args.model} {options or ''}, {args.fraction:.0%} of CIFAR-10, batch {args.batch_size}, "
          f"{args.threads} thread(s), {steps - WARMUP} timed steps, median of {args.rounds} rounds")
    for name, t in times.items():
        print(f"{name}: {statistics.median(t) * 1e3:.1f} ms/step   ratio to plain: {statistics.median(t) / plain:.3f}")


if __name__ == "__main__":
    main()
