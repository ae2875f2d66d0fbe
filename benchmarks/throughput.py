"""Training throughput of labelrep's loop against a minimal hand-written PyTorch loop.

Both train the same model (ResNet-20 + linear head, channels-last) with the same optimiser, batch size
and images, in the same process, alternating so that load on the machine hits both alike. The minimal
loop gets pre-normalised float batches and does nothing but forward, cross-entropy, backward, step;
labelrep's loop also crops, flips and normalises on the fly, builds dense targets and tracks metrics.

Each side is timed over the same number of steps, from the end of one step to the end of the last,
both as wall time and as this process's CPU time (with one thread, CPU time is much less disturbed by
other work on a shared machine than wall time; on a quiet machine the two agree).

    python benchmarks/throughput.py --data-dir /path/to/cifar10 [--fraction 0.1 --threads 1 --rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import labelrep
from labelrep import config as config_mod
from labelrep.train import Hooks
from labelrep.train.setup import build_run


class Clock:
    """Wall and CPU seconds since ``start()``."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def minimal_loop(parts, batch_size: int, steps: int) -> tuple[float, float]:
    """Images per second (wall, CPU) of the plainest loop: fixed float batches, no augmentation, no metrics."""
    torch.manual_seed(0)
    model = labelrep.create_model("resnet20", parts.label_space, 3, 32).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_all = parts.normalize(torch.as_tensor(parts.train.images))
    y_all = torch.as_tensor(parts.train.labels)
    batches = [(x_all[i:i + batch_size], y_all[i:i + batch_size])
               for i in range(0, len(y_all) - batch_size + 1, batch_size)][:steps + 1]
    model.train()
    clock = Clock()
    for i, (x, y) in enumerate(batches):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == 0:  # the first step warms up; time the rest
            clock.start()
    wall, cpu = clock.read()
    return steps * batch_size / wall, steps * batch_size / cpu


class StepClock(Hooks):
    """Times labelrep's loop over its second epoch, from the end of its first step to the end of its last."""

    def __init__(self):
        self.clock, self.steps, self.seconds = Clock(), 0, None

    def on_step(self, epoch: int, step: int) -> None:
        if epoch == 2 and step == 0:
            self.clock.start()
        elif epoch == 2:
            self.steps += 1
            self.seconds = self.clock.read()


def toolkit_loop(config: dict) -> tuple[float, float, int]:
    """Images per second (wall, CPU) of labelrep.train's second epoch, and the steps timed."""
    clock = StepClock()
    labelrep.train(config, hooks=clock)
    batch = config["optim"]["batch_size"]
    wall, cpu = clock.seconds
    return clock.steps * batch / wall, clock.steps * batch / cpu, clock.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 (pickles or image folder)")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = config_mod.resolve({
        "data": {"dataset": "cifar10", "data_dir": args.data_dir, "fraction": args.fraction},
        "model": {"name": "resnet20"}, "optim": {"batch_size": args.batch_size},
        "train": {"epochs": 2, "device": "cpu", "checkpoint": False, "eval_every": 2},
    })
    parts = build_run(config)
    ours, plain = [], []
    for r in range(args.rounds):
        wall, cpu, steps = toolkit_loop(config)
        ours.append((wall, cpu))
        plain.append(minimal_loop(parts, args.batch_size, steps))
        print(f"round {r + 1}: labelrep {wall:.0f} img/s wall, {cpu:.0f} img/s CPU; "
              f"minimal {plain[-1][0]:.0f} wall, {plain[-1][1]:.0f} CPU", flush=True)
    print(f"ResNet-20, batch {args.batch_size}, {args.threads} threads, {steps} steps per measurement, "
          f"{args.rounds} interleaved rounds (medians)")
    for i, kind in enumerate(("wall", "CPU")):
        o, p = statistics.median(x[i] for x in ours), statistics.median(x[i] for x in plain)
        ratios = [a[i] / b[i] for a, b in zip(ours, plain)]
        print(f"{kind:>4}: labelrep loop {o:.0f} img/s   minimal loop {p:.0f} img/s   ratio {o / p:.3f} "
              f"(per round {min(ratios):.3f}..{max(ratios):.3f})")


if __name__ == "__main__":
    main()
