"""One run on several processes (DistributedDataParallel), launched by ``torchrun`` or ``--nproc``.

Every rank builds the same run, draws the same global batch order and augmentation, and trains on
its contiguous part of each batch; DDP averages the gradients. Rank 0 alone touches the run folder:
it loads the checkpoint on resume and hands that state to the others, tests, and writes. gloo on
the CPU, NCCL on CUDA (one GPU per rank: ``LOCAL_RANK``). Batch norm keeps per-rank statistics of
the rank's part of the batch (SyncBatchNorm needs GPUs); rank 0's running statistics are the ones
kept, as DDP broadcasts them each step.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist

from ..errors import UserError

LAUNCHED_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Group()


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting the same variables)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and all(v in os.environ for v in LAUNCHED_VARS)


def init() -> Group:
    """Join the process group torchrun describes (once); one process alone gets ``SINGLE``.

    On CUDA each rank takes GPU ``LOCAL_RANK``, so ``cuda`` (train.device auto) means its own GPU;
    call this before the run is built."""
    if not launched():
        return SINGLE
    group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if not torch_dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            if group.local_rank >= torch.cuda.device_count():
                raise UserError(f"rank {group.rank} wants GPU {group.local_rank}, but this machine has "
                                f"{torch.cuda.device_count()}; launch at most that many processes per node")
            torch.cuda.set_device(group.local_rank)
        torch_dist.init_process_group("nccl" if cuda else "gloo")
    return group


def finish() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def check_device(group: Group, device: torch.device) -> None:
    if not group.active:
        return
    backend = torch_dist.get_backend()
    if (device.type, backend) not in (("cuda", "nccl"), ("cpu", "gloo")):
        raise UserError(f"the process group uses {backend} but the run is on {device.type}; "
                        "set train.device to auto (or leave it out) under torchrun")
    if device.type == "cuda" and (device.index if device.index is not None else torch.cuda.current_device()) \
            != group.local_rank:
        raise UserError(f"rank {group.rank} must use cuda:{group.local_rank}, not {device}; set train.device to "
                        "auto or cuda, and from Python call labelrep.train.distributed.init() before train()")


def check_supported(group: Group, targets, batch_size: int) -> None:
    if not group.active:
        return
    if targets.watches:
        raise UserError(f"target source {type(targets).__name__} learns from every step; it runs in one process "
                        "only (leave out torchrun / --nproc)")
    if batch_size < group.world:
        raise UserError(f"optim.batch_size {batch_size} is smaller than the {group.world} processes; "
                        "each process needs part of every batch")


def wrap(group: Group, model: torch.nn.Module) -> torch.nn.Module:
    """The module to call in training: DDP around ``model`` (its weights broadcast from rank 0)."""
    if not group.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [group.local_rank] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=ids)


def share(group: Group, value):
    """Rank 0's ``value`` (any picklable object: a checkpoint state, an epoch record) on every rank."""
    if not group.active:
        return value
    box = [value if group.is_main else None]
    torch_dist.broadcast_object_list(box, src=0)  # NCCL: through the rank's current GPU
    return box[0]


def total(group: Group, tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place); a no-op alone."""
    if group.active:
        torch_dist.all_reduce(tensor)
    return tensor


def launch(nproc: int, config: dict, argv: list[str]) -> int:
    """``torchrun --standalone --nproc-per-node N -m labelrep train --config <resolved> ARGV`` on this node."""
    from .. import config as config_mod

    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise UserError(f"--nproc {nproc} asks for more processes than the {torch.cuda.device_count()} GPUs here")
    with tempfile.TemporaryDirectory(prefix="labelrep-nproc-") as tmp:
        file = Path(tmp) / "config.yaml"
        file.write_text(config_mod.dump_yaml(config))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "labelrep", "train", "--config", str(file), *argv]
        env = {**os.environ}
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        return subprocess.call(cmd, env=env)
