"""Training throughput of labelrep's loop against a minimal hand-written PyTorch loop.

Both train the same model (ResNet-20 + linear head, channels-last) with the same optimiser, batch size
and images, in the same process, alternating so that load on the machine hits both alike. The minimal
loop gets pre-normalised float batches and does nothing but forward, cross-entropy, backward, step;
labelrep's loop also crops, flips and normalises on the fly, builds dense targets and tracks metrics.

    python benchmarks/throughput.py --data-dir /path/to/cifar10 [--fraction 0.1 --threads 2 --rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import labelrep
from labelrep import config as config_mod
from labelrep.train.setup import build_run


def minimal_loop(parts, batch_size: int, steps: int) -> float:
    """Images per second of the plainest loop: fixed float batches, no augmentation, no metrics."""
    torch.manual_seed(0)
    model = labelrep.create_model("resnet20", parts.label_space, 3, 32).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_all = parts.normalize(torch.as_tensor(parts.train.images))
    y_all = torch.as_tensor(parts.train.labels)
    batches = [(x_all[i:i + batch_size], y_all[i:i + batch_size])
               for i in range(0, len(y_all) - batch_size + 1, batch_size)][:steps]
    model.train()
    for x, y in batches[:2]:  # warm-up
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    start = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(batches) * batch_size / (time.perf_counter() - start)


def toolkit_loop(config: dict) -> tuple[float, int]:
    """Images per second of labelrep.train over its second epoch (the first warms up)."""
    result = labelrep.train(config)
    epoch = result.history[-1]
    images = len(result.parts.train) // config["optim"]["batch_size"] * config["optim"]["batch_size"]
    return images / epoch["train_seconds"], images // config["optim"]["batch_size"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 (pickles or image folder)")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = config_mod.resolve({
        "data": {"dataset": "cifar10", "data_dir": args.data_dir, "fraction": args.fraction},
        "model": {"name": "resnet20"}, "optim": {"batch_size": args.batch_size},
        "train": {"epochs": 2, "device": "cpu", "checkpoint": False},
    })
    parts = build_run(config)
    ours, plain = [], []
    for r in range(args.rounds):
        rate, steps = toolkit_loop(config)
        ours.append(rate)
        plain.append(minimal_loop(parts, args.batch_size, steps))
        print(f"round {r + 1}: labelrep {ours[-1]:.0f} img/s, minimal {plain[-1]:.0f} img/s", flush=True)
    o, p = statistics.median(ours), statistics.median(plain)
    print(f"ResNet-20, batch {args.batch_size}, {args.threads} threads, {steps} steps per measurement")
    print(f"labelrep loop: {o:.0f} img/s   minimal loop: {p:.0f} img/s   ratio: {o / p:.3f}")


if __name__ == "__main__":
    main()
