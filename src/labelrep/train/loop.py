"""The training loop: one readable function, data on the device, nothing extra in the hot path."""
from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .. import config as config_mod
from ..errors import NonFiniteLossError, UserError
from ..data.mixing import create_mixer
from ..evaluate.accuracy import accuracy
from ..files import atomic_write_json, atomic_write_text
from .checkpoint import load_checkpoint, save_checkpoint
from .folder import CHECKPOINT, RunFolder
from .preflight import check_names, preflight
from .schedule import build_scheduler
from .setup import RunParts, build_run

BEST = "best.pt"


class Hooks:
    """Callbacks for progress display; the library itself never prints."""

    def on_start(self, parts: RunParts, epochs: int, steps_per_epoch: int, first_epoch: int) -> None: ...
    def on_step(self, epoch: int, step: int) -> None: ...
    def on_epoch(self, record: dict) -> None: ...
    def on_end(self, summary: dict) -> None: ...


@dataclass
class RunResult:
    """What ``train`` hands back; ``model`` is the network the run tested (the EMA copy with ``train.ema``),
    so a result goes wherever a loaded run does (``EVALUATIONS``, ``robust_accuracy``...)."""

    summary: dict
    history: list[dict]
    parts: RunParts
    out_dir: Path | None
    model: torch.nn.Module

    @property
    def label_space(self):
        return self.parts.label_space


def _flag(value, device: torch.device) -> bool:
    return device.type == "cuda" if value == "auto" else bool(value)


def train(config: dict | None = None, out: str | Path | None = None, resume: bool = False,
          hooks: Hooks | None = None) -> RunResult:
    """Train one run; with ``out`` the run folder gets config, metrics, checkpoints and summary.

    The folder is all or nothing: any failure before its first checkpoint removes what the run wrote.
    """
    hooks = hooks or Hooks()
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
    if folder is None:
        return _train(parts, None, False, hooks)
    with folder.open(cfg):
        return _train(parts, folder.path, folder.resuming, hooks)


def _train(parts: RunParts, out_dir: Path | None, resuming: bool, hooks: Hooks) -> RunResult:
    cfg, model, space, device = parts.config, parts.model, parts.label_space, parts.device
    o, t = cfg["optim"], cfg["train"]
    epochs, seed = t["epochs"], t["seed"]
    if epochs < 1:
        raise UserError(f"train.epochs must be at least 1, got {epochs}")
    eval_every = t["eval_every"]
    if not (isinstance(eval_every, int) and eval_every >= 1):
        raise UserError(f"train.eval_every must be a whole number of epochs >= 1, got {eval_every!r}")
    train_loader = parts.loader(parts.train, train=True)
    test_loader = parts.loader(parts.data.test)
    val_loader = parts.loader(parts.val) if parts.val is not None else None
    if len(train_loader) == 0:
        raise UserError("the training set is empty after subsetting; raise data.fraction")

    optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                                nesterov=o["nesterov"] and o["momentum"] > 0, weight_decay=o["weight_decay"])
    scheduler = build_scheduler(optimizer, o, len(train_loader), epochs)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t["ema"]), use_buffers=True)
           if t["ema"] else None)
    eval_model = ema.module if ema is not None else model
    mixer = create_mixer(cfg["mix"]["name"], space, **cfg["mix"]["options"])
    use_amp = _flag(t["amp"], device)
    forward = torch.compile(model) if _flag(t["compile"], device) else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext

    history: list[dict] = []
    best = {"val_accuracy": -1.0, "epoch": None, "test_accuracy": None}
    first_epoch = 1
    if resuming:
        state = load_checkpoint(out_dir / CHECKPOINT, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, best = list(state["history"]), dict(state["best"])
        first_epoch = state["epoch"] + 1
    if out_dir is not None:
        atomic_write_text(out_dir / "config.yaml", config_mod.dump_yaml(cfg))

    hooks.on_start(parts, epochs, len(train_loader), first_epoch)
    check_every = 1 if device.type == "cpu" else 50  # a host sync per step is free on the CPU only
    started = time.perf_counter()
    for epoch in range(first_epoch, epochs + 1):
        epoch_start = time.perf_counter()
        # Re-seeding per epoch makes a resumed run draw exactly what an uninterrupted one draws.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        # Dropout and Shake-Shake draw from the global generator: seed it per epoch too (offset so its
        # stream differs from the data order's).
        torch.manual_seed(seed * 1_000_003 + epoch + 2**31)
        train_loader.set_generator(generator)
        if mixer is not None:
            mixer.set_generator(generator)
        model.train()
        steps = len(train_loader)
        losses = torch.zeros(steps, device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        lr = optimizer.param_groups[0]["lr"]
        for step, (x, y, _) in enumerate(train_loader):
            if mixer is None:
                target = space.targets(y)
            else:
                x, target = mixer(x, y)
            with autocast():
                output = forward(x)
            loss = space.loss(output, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            losses[step] = loss.detach()
            correct += (space.scores(output.detach()).argmax(1) == y).sum()
            seen += len(y)
            if (step + 1) % check_every == 0 or step + 1 == steps:
                _check_finite(losses[: step + 1], epoch)
            hooks.on_step(epoch, step)
        record = {
            "epoch": epoch,
            "train_loss": losses.mean().item(),
            "train_accuracy": correct.item() / seen,
            "lr": lr,
        }
        record["train_seconds"] = time.perf_counter() - epoch_start
        # Testing a whole split can cost as much as the epoch itself; eval_every thins it out.
        if epoch % eval_every == 0 or epoch == epochs:
            if val_loader is not None:
                record["val_accuracy"] = accuracy(eval_model, space, val_loader)
            record["test_accuracy"] = accuracy(eval_model, space, test_loader)
        record["seconds"] = time.perf_counter() - epoch_start
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
                    "history": history, "best": best,
                    "eval_model": eval_model.state_dict() if ema is not None else None})
        hooks.on_epoch(record)

    # Hand back a model ready for evaluation: batch norm on running statistics, no state updates.
    model.eval()
    eval_model.eval()
    summary = summarize(parts, history, best, time.perf_counter() - started)
    if out_dir is not None:
        atomic_write_json(out_dir / "summary.json", summary)
    hooks.on_end(summary)
    return RunResult(summary, history, parts, out_dir, eval_model)


def _check_finite(losses: torch.Tensor, epoch: int) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0, 0])
        raise NonFiniteLossError(epoch, step, float(losses[step]))


def summarize(parts: RunParts, history: list[dict], best: dict, wall_seconds: float) -> dict:
    cfg, last = parts.config, history[-1]
    summary = {
        "dataset": cfg["data"]["dataset"],
        "label": cfg["label"]["name"],
        "model": cfg["model"]["name"],
        "epochs": cfg["train"]["epochs"],
        "seed": cfg["train"]["seed"],
        "fraction": cfg["data"]["fraction"],
        "train_images": len(parts.train),
        "test_images": len(parts.data.test),
        "test_accuracy": last["test_accuracy"],
        "final_train_loss": last["train_loss"],
        "train_seconds": sum(r["train_seconds"] for r in history),
        "seconds": sum(r["seconds"] for r in history),
        "wall_seconds": wall_seconds,
        "config_hash": config_mod.config_hash(cfg),
        "label_space": parts.label_space.describe(),
    }
    if best["epoch"] is not None:
        summary.update(best_epoch=best["epoch"], best_val_accuracy=best["val_accuracy"],
                       test_accuracy_at_best_val=best["test_accuracy"])
    return summary
