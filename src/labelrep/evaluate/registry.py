"""Evaluations a study (or the CLI) runs, by name: an optional part that watches training and the part after.

An evaluation registers

- its **after** part, ``fn(run, **options) -> list[dict]``, run on a finished run (a ``train.run.Run``
  loaded run), returning tidy rows, each at least ``{"metric": str, "value": float}`` plus any keys
  that locate the number (``eps``, ``protocol``, ``attack``, ``fraction``...);
- optionally a **watch** part, ``watch(folder, **options) -> Hooks``: training hooks (``on_start``,
  ``on_step``, ``on_epoch``, ``on_end``) the study runner hands to ``train()``; they write what they see
  into ``folder`` (``<run>/watch/<key>``, kept across a resume), and the after part gets that folder as
  its ``watch`` argument;
- a **drawing** (``Drawing``): how the report and the CLI draw its rows, so neither names an evaluation.

Options go to whichever part names them (a study checks each option is taken by one of them).
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..files import atomic_write_text
from ..registry import Registry
from ..train.hooks import Hooks

EVALUATIONS: Registry = Registry("evaluation", builds=False)  # they run: their errors are not refusals
WATCHES: dict[str, Callable] = {}    # evaluation name -> watch factory
DRAWINGS: dict[str, "Drawing"] = {}  # evaluation name -> how its rows are drawn
MULTI_LABEL: set[str] = set()        # evaluations that work for multi-label runs (the rest assume one class)


@dataclass(frozen=True)
class Drawing:
    """How an evaluation's rows are drawn (defaults: whatever the rows allow).

    ``x``: the key rows form curves along (None: the first numeric key that varies; no such key means
    one number per run, tabulated). ``curves``: the metrics drawn (empty: all); the evaluation's other
    metrics are *notes*, shown as a small table beside the curves. ``series``: locating keys whose
    values split curves into panels, in title order. ``baseline``: rows matching it (e.g.
    ``{"attack": "none"}``) start every curve that shares the ``baseline_match`` keys, at ``x = baseline_x``.
    ``names``: display names of metrics and keys. ``hide``: series values left out of panel titles.
    """

    x: str | None = None
    curves: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    baseline: dict = field(default_factory=dict)
    baseline_match: tuple[str, ...] = ()
    baseline_x: float = 0.0
    title: str | None = None
    log_x: bool = False
    names: dict = field(default_factory=dict)
    hide: tuple[str, ...] = ("", "any", "none")
    ignore: tuple[str, ...] = ("images",)  # locating keys that neither split curves nor name them


def register_evaluation(name: str, description: str | None = None, watch: Callable | None = None,
                        drawing: Drawing | None = None, multi_label: bool = False):
    """Decorator for an evaluation's after part, with its watch part and drawing; ``multi_label``: it
    also works when an image may show several classes (others are refused for such runs)."""

    def add(fn):
        EVALUATIONS.register(name, description)(fn)
        if watch is not None:
            WATCHES[name] = watch
        DRAWINGS[name] = drawing or Drawing()
        if multi_label:
            MULTI_LABEL.add(name)
        return fn

    return add


def drawing(name: str) -> Drawing:
    return DRAWINGS.get(name, Drawing())


def parameters(fn: Callable) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("run", "folder", "watch", "args", "kwargs")]


def options_for(fn: Callable, options: dict) -> dict:
    """The options ``fn`` names (each part of an evaluation takes its own)."""
    names = set(parameters(fn))
    return {k: v for k, v in options.items() if k in names}


def unknown_options(name: str, options: dict) -> list[str]:
    """Options neither part of the evaluation takes."""
    taken = set(parameters(EVALUATIONS.get(name)))
    if name in WATCHES:
        taken |= set(parameters(WATCHES[name]))
    return sorted(set(options) - taken)


def accepted_options(name: str) -> list[str]:
    names = parameters(EVALUATIONS.get(name))
    if name in WATCHES:
        names += [p for p in parameters(WATCHES[name]) if p not in names]
    return names


def default_watch_folder(run_dir: str | Path, key: str) -> Path:
    """``<run>/watch/<key>``: a study's key is the evaluation's (name and options); the CLI's, its name."""
    return Path(run_dir) / "watch" / key


def watch_hooks(name: str, folder: str | Path, options: dict):
    """The training hooks of an evaluation's watch part, or None when it has none."""
    factory = WATCHES.get(name)
    if factory is None:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return factory(Path(folder), **options_for(factory, options))


def run_after(name: str, run, options: dict, watch: Path | None = None) -> list[dict]:
    """The after part on a loaded run; ``watch`` is the folder its watch part wrote."""
    if name not in MULTI_LABEL:
        run.label_space.require_single_label(f"evaluation {name!r}")
    kwargs = dict(options)
    if name in WATCHES:
        kwargs = {**options_for(EVALUATIONS.get(name), options), "watch": watch}
    return EVALUATIONS.create(name, run=run, **kwargs)


@register_evaluation("accuracy", "test accuracy of the run's final weights (and by the label space's "
                     "threshold rule, where it has one)",
                     drawing=Drawing(names={"test_accuracy": "test accuracy",
                                            "threshold_accuracy": "threshold-rule accuracy"}))
def test_accuracy(run, max_images: int | None = None) -> list[dict]:
    """``max_images``: a fixed seeded choice of that many test images (the one robustness attacks)."""
    from ..labels.regression import threshold_accuracy
    from ..scoring import accuracy
    from .robustness import evaluation_images

    test = run.parts.data.test
    if max_images is not None:
        test = test.take(evaluation_images(len(test), max_images))
    extra = {"images": len(test)} if max_images is not None else {}
    rows = [{"metric": "test_accuracy", "value": accuracy(run.model, run.label_space, run.parts.loader(test)), **extra}]
    if hasattr(run.label_space, "threshold_correct"):  # a second decision rule the space declares (Chen et al.'s)
        rows.append({"metric": "threshold_accuracy", **extra,
                     "value": threshold_accuracy(run.model, run.label_space, run.parts.loader(test))})
    return rows


@register_evaluation("uncentred", "test accuracy of the same weights without the test-time centring "
                     "(runs whose mixer centres its inputs)",
                     drawing=Drawing(names={"uncentred_accuracy": "accuracy without test-time centring"}))
def uncentred_accuracy(run) -> list[dict]:
    """What the centring in front of the encoder is worth at test time (BC+ centres every image)."""
    from ..data.mixing import CenteredEncoder
    from ..scoring import accuracy

    model = run.model
    if not isinstance(model.encoder, CenteredEncoder):
        raise UserError("evaluation 'uncentred' needs a run whose mixer centres its inputs; this run's does not")
    centred = model.encoder
    model.encoder = centred.encoder
    try:
        value = accuracy(model, run.label_space, run.parts.loader(run.parts.data.test))
    finally:
        model.encoder = centred
    return [{"metric": "uncentred_accuracy", "value": value}]


class MonitorAccuracy(Hooks):
    """Training hooks: accuracy of the tested model on ``images`` fixed, class-balanced test images
    after every epoch, into ``folder/monitor.jsonl`` (epochs before a resume are kept)."""

    FILE = "monitor.jsonl"

    def __init__(self, folder: Path, images: int = 100, seed: int = 0):
        if not isinstance(images, int) or images < 1:
            raise UserError(f"monitor images must be a positive count, got {images!r}")
        self.file, self.count, self.seed = Path(folder) / self.FILE, images, seed

    def on_start(self, state):
        from .features import fixed_images

        self.parts, self.model = state.parts, state.eval_model
        test = self.parts.data.test
        self.split = test.take(fixed_images(test.labels, self.count, self.seed))
        kept = self.file.read_text().splitlines() if self.file.is_file() else []
        self.records = [r for r in map(json.loads, kept) if r["epoch"] < state.first_epoch]
        last = state.first_epoch - 1  # killed between the checkpoint and this hook: the weights are here
        if last >= 1 and (not self.records or self.records[-1]["epoch"] < last):
            self.on_epoch({"epoch": last})

    def on_epoch(self, record):
        from ..scoring import accuracy

        acc = accuracy(self.model, self.parts.label_space, self.parts.loader(self.split))
        self.records.append({"epoch": record["epoch"], "accuracy": acc, "images": len(self.split)})
        atomic_write_text(self.file, "".join(json.dumps(r) + "\n" for r in self.records))


@register_evaluation("monitor", "accuracy on a fixed subset of the test images after every epoch",
                     watch=MonitorAccuracy,
                     drawing=Drawing(x="epoch", title="Accuracy on the monitor images",
                                     names={"monitor_accuracy": "monitor accuracy"}))
def monitor(run, watch: Path | None = None) -> list[dict]:
    folder = Path(watch) if watch is not None else default_watch_folder(run.path, "monitor")
    file = folder / MonitorAccuracy.FILE
    if not file.is_file():
        raise UserError(f"{folder} holds no monitor records: the monitor watches training, so the run "
                        "must train with it (add it to the study before the run trains)")
    return [{"metric": "monitor_accuracy", "value": r["accuracy"], "epoch": r["epoch"], "images": r["images"]}
            for r in map(json.loads, file.read_text().splitlines())]
