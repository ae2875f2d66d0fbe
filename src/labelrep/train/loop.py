"""The training loop: one readable function, data on the device, nothing extra in the hot path.

Per step: batch -> target source -> (mixer) -> forward -> loss -> step. The target source says
what each sample is asked to output (the class table by default); a source that learns from
training (``watches``) is shown each step's output, any other costs nothing.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
import warnings
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .. import config as config_mod
from ..data.mixing import create_mixer
from ..errors import NonFiniteLossError, UserError
from ..files import atomic_write_json, atomic_write_text
from ..scoring import split_score
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .folder import RunFolder
from .hooks import Hooks, TrainState, as_hooks
from .optim import build_optimizer
from .preflight import check_names, preflight
from .run import BEST, CHECKPOINT, Run
from .schedule import build_scheduler
from .setup import RunParts, build_run
from .targets import TargetSource, create_target_source

# Kept for callers of the first API: both names are the one run type now.
RunResult = Run


def _flag(value, device: torch.device) -> bool:
    return device.type == "cuda" if value == "auto" else bool(value)


def train(config: dict | None = None, out: str | Path | None = None, resume: bool = False,
          hooks: Hooks | list[Hooks] | None = None) -> Run:
    """Train one run; with ``out`` the run folder gets config, metrics, checkpoints and summary.

    The folder is all or nothing: any failure before its first checkpoint removes what the run wrote.
    """
    hooks = as_hooks(hooks)
    cfg = config_mod.resolve(config)
    folder = RunFolder(out, resume) if out is not None else None
    if folder is not None:
        folder.check(cfg)  # a folder the run cannot use is refused before the data is loaded
    check_names(cfg)
    # Warnings of a build that then fails (torch on zero-size layers) would only bury the one sentence.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = build_run(cfg)  # fails on bad input before anything is written
        preflight(parts)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    targets = create_target_source(cfg["target"]["name"], **cfg["target"]["options"])
    out_dir = folder.path if folder is not None else None
    targets.bind(parts, out_dir)  # a missing teacher or file fails here, before anything is written
    if folder is None:
        return _train(parts, targets, None, False, hooks)
    with folder.open(cfg):
        return _train(parts, targets, out_dir, folder.resuming, hooks)


def plan_steps(t: dict, steps_per_epoch: int) -> tuple[int, int]:
    """``(epochs, total steps)``: from ``train.steps`` when set (the last epoch cut short), else epochs."""
    if t["steps"] is None:
        if t["epochs"] < 1:
            raise UserError(f"train.epochs must be at least 1, got {t['epochs']}")
        return t["epochs"], t["epochs"] * steps_per_epoch
    steps = t["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"train.steps must be a whole number of optimisation steps >= 1, got {steps!r}")
    return math.ceil(steps / steps_per_epoch), steps


def _train(parts: RunParts, targets: TargetSource, out_dir: Path | None, resuming: bool, hooks: Hooks) -> Run:
    cfg, model, space, device = parts.config, parts.model, parts.label_space, parts.device
    o, t = cfg["optim"], cfg["train"]
    seed = t["seed"]
    eval_every = t["eval_every"]
    if not (isinstance(eval_every, int) and eval_every >= 1):
        raise UserError(f"train.eval_every must be a whole number of epochs >= 1, got {eval_every!r}")
    train_loader = parts.loader(parts.train, train=True)
    test_loader = parts.loader(parts.data.test)
    val_loader = parts.loader(parts.val) if parts.val is not None else None
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError("the training set is empty after subsetting; raise data.fraction")
    epochs, total_steps = plan_steps(t, steps_per_epoch)
    # Under torchrun: each rank trains on its part of every batch; rank 0 alone reads and writes the folder.
    group = distributed.init()
    distributed.check_device(group, device)
    distributed.check_supported(group, targets, o["batch_size"])
    train_loader.shard(group.rank, group.world)
    if not group.is_main:
        out_dir, resuming = None, False

    optimizer = build_optimizer(model, o)
    scheduler = build_scheduler(optimizer, o, steps_per_epoch, epochs, total_steps)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t["ema"]), use_buffers=True)
           if t["ema"] else None)
    eval_model = ema.module if ema is not None else model
    mixer = create_mixer(cfg["mix"]["name"], space, **cfg["mix"]["options"])
    use_amp = _flag(t["amp"], device)
    forward = distributed.wrap(group, model)
    forward = torch.compile(forward) if _flag(t["compile"], device) else forward
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    watches = targets.watches
    single_label = not space.multi_label

    history: list[dict] = []
    best = {"val_accuracy": -1.0, "epoch": None, "test_accuracy": None}
    first_epoch = 1
    state = load_checkpoint(out_dir / CHECKPOINT, map_location="cpu" if group.active else device) if resuming else None
    state = distributed.share(group, state)  # rank 0's checkpoint (or none) on every rank
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        targets.load_state_dict(state.get("targets") or {})
        history, best = list(state["history"]), dict(state["best"])
        first_epoch = state["epoch"] + 1
    if out_dir is not None:
        atomic_write_text(out_dir / "config.yaml", config_mod.dump_yaml(cfg))

    hooks.on_start(TrainState(parts, out_dir, epochs, steps_per_epoch, total_steps, first_epoch, model, eval_model))
    check_every = 1 if device.type == "cpu" else 50  # a host sync per step is free on the CPU only
    started = time.perf_counter()
    for epoch in range(first_epoch, epochs + 1):
        epoch_start = time.perf_counter()
        # Re-seeding per epoch makes a resumed run draw exactly what an uninterrupted one draws.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        # Dropout and Shake-Shake draw from the global generator: seed it per epoch too (offset so its
        # stream differs from the data order's).
        torch.manual_seed(seed * 1_000_003 + epoch + 2**31 + group.rank * 2**20)
        train_loader.set_generator(generator)
        if mixer is not None:  # several ranks mix within their parts: each its own draws, the batch order shared
            mixer.set_generator(torch.Generator().manual_seed(seed * 1_000_003 + epoch + group.rank * 2**40)
                                if group.active else generator)
        model.train()
        steps = min(steps_per_epoch, total_steps - (epoch - 1) * steps_per_epoch)
        losses = torch.zeros(steps, device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        lr = optimizer.param_groups[0]["lr"]
        # islice: a step budget may end the last epoch early
        for step, (x, y, idx) in enumerate(itertools.islice(train_loader, steps)):
            target = targets(x, y, idx)
            if mixer is not None:
                x, target = mixer(x, target, y)
            with autocast():
                output = forward(x)
            if targets.refines:
                target = targets.refine(output, target, y)
            loss = space.loss(output, target)
            batch = train_loader.global_batch(step)  # len(y) in one process
            share = len(y) / batch  # this rank's part: DDP's mean of the weighted losses is the global batch's
            optimizer.zero_grad(set_to_none=True)
            (loss * (share * group.world) if group.active else loss).backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            losses[step] = loss.detach() * share
            if single_label:  # a multi-label image has no one class to be right about
                correct += (space.scores(output.detach()).argmax(1) == y).sum()
            seen += batch
            if watches:
                targets.observe(output.detach(), target, y, idx)
            if (step + 1) % check_every == 0 or step + 1 == steps:
                _check_finite(losses[: step + 1], epoch)
            hooks.on_step(epoch, step)
        targets.on_epoch_end(epoch)
        distributed.total(group, losses)
        distributed.total(group, correct)
        record = {
            "epoch": epoch,
            "train_loss": losses.mean().item(),
            "train_accuracy": correct.item() / seen if single_label else None,
            "lr": lr,
        }
        record["train_seconds"] = time.perf_counter() - epoch_start
        # Testing a whole split can cost as much as the epoch itself; eval_every thins it out.
        if group.is_main and (epoch % eval_every == 0 or epoch == epochs):
            if val_loader is not None:
                record["val_accuracy"] = split_score(eval_model, space, val_loader, parts.val.targets)
            record["test_accuracy"] = split_score(eval_model, space, test_loader, parts.data.test.targets)
        record["seconds"] = time.perf_counter() - epoch_start
        record = distributed.share(group, record)  # rank 0 tested: every rank keeps the same history
        history.append(record)
        if "val_accuracy" in record and record["val_accuracy"] > best["val_accuracy"]:
            best = {"val_accuracy": record["val_accuracy"], "epoch": epoch, "test_accuracy": record["test_accuracy"]}
            if out_dir is not None and t["checkpoint"]:
                save_checkpoint(out_dir / BEST, {"model": eval_model.state_dict(), "epoch": epoch})
        if out_dir is not None:
            atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
            if t["checkpoint"]:
                save_checkpoint(out_dir / CHECKPOINT, {
                    "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                    "history": history, "best": best, "targets": targets.state_dict(),
                    "eval_model": eval_model.state_dict() if ema is not None else None})
        hooks.on_epoch(record)

    # Hand back a model ready for evaluation: batch norm on running statistics, no state updates.
    model.eval()
    eval_model.eval()
    summary = summarize(parts, history, best, time.perf_counter() - started, total_steps)
    if out_dir is not None:
        atomic_write_json(out_dir / "summary.json", summary)
    hooks.on_end(summary)
    return Run(out_dir, parts.config, parts, summary, history, eval_model)


def _check_finite(losses: torch.Tensor, epoch: int) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0, 0])
        raise NonFiniteLossError(epoch, step, float(losses[step]))


def summarize(parts: RunParts, history: list[dict], best: dict, wall_seconds: float, total_steps: int) -> dict:
    cfg, last = parts.config, history[-1]
    summary = {
        "dataset": cfg["data"]["dataset"],
        "label": cfg["label"]["name"],
        "model": cfg["model"]["name"],
        "epochs": len(history) if cfg["train"]["steps"] is not None else cfg["train"]["epochs"],
        "steps": total_steps,
        "seed": cfg["train"]["seed"],
        "fraction": cfg["data"]["fraction"],
        "train_images": len(parts.train),
        "test_images": len(parts.data.test),
        "test_accuracy": last["test_accuracy"],
        "test_metric": parts.label_space.test_metric,  # what test_accuracy holds: accuracy, or mAP
        "final_train_loss": last["train_loss"],
        "train_seconds": sum(r["train_seconds"] for r in history),
        "seconds": sum(r["seconds"] for r in history),
        "wall_seconds": wall_seconds,
        "config_hash": config_mod.config_hash(cfg),
        "label_space": parts.label_space.describe(),
        "target": cfg["target"]["name"],
    }
    if best["epoch"] is not None:
        summary.update(best_epoch=best["epoch"], best_val_accuracy=best["val_accuracy"],
                       test_accuracy_at_best_val=best["test_accuracy"])
    return summary
