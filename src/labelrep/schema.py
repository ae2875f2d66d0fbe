"""The declared config schema: every key's default, what it allows and what it means.

Validation (``labelrep.config.resolve``), the defaults and key list of ``labelrep train --help`` and
the README's config table are all read from here, so they cannot drift apart. A part of the toolkit
that owns a section declares its keys where it registers them (``labelrep.config.add_section``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import UserError


class Kind:
    """What a key allows: ``check`` returns the (normalised) value or raises ``ValueError``."""

    allowed: str = "any value"

    def check(self, value: Any) -> Any:
        return value


class Anything(Kind):
    pass


class Number(Kind):
    """A real (or, with ``integer``, a whole) number in a range; NaN and inf are refused."""

    def __init__(self, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, integer: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open, self.integer = lo, hi, lo_open, hi_open, integer
        what = "a whole number" if integer else "a number"
        if lo is not None and hi is not None:
            self.allowed = f"{what} in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
        elif lo is not None:
            self.allowed = f"{what} {'>' if lo_open else '>='} {_num(lo)}"
        elif hi is not None:
            self.allowed = f"{what} {'<' if hi_open else '<='} {_num(hi)}"
        else:
            self.allowed = what

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        if self.integer and not isinstance(value, int):
            raise ValueError
        if not self.integer:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError
        lo_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        hi_bad = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if lo_bad or hi_bad:
            raise ValueError
        return value


def Int(lo: int | None = None, hi: int | None = None) -> Number:
    return Number(lo, hi, integer=True)


class Bool(Kind):
    allowed = "true or false"

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError
        return value


class Text(Kind):
    allowed = "a non-empty text"

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError
        return value


class Choice(Kind):
    def __init__(self, *values: Any):
        self.values = values
        self.allowed = "one of " + ", ".join(_show(v) for v in values)

    def check(self, value: Any) -> Any:
        # `True in (1,)` holds in Python: compare types too, so 1 is not read as true.
        if not any(value == v and type(value) is type(v) for v in self.values):
            raise ValueError
        return value


class Pattern(Kind):
    def __init__(self, regex: str, allowed: str):
        self.regex, self.allowed = re.compile(regex), allowed

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or not self.regex.fullmatch(value):
            raise ValueError
        return value


class Nullable(Kind):
    def __init__(self, kind: Kind):
        self.kind = kind
        self.allowed = f"{kind.allowed}, or null"

    def check(self, value: Any) -> Any:
        return None if value is None else self.kind.check(value)


class AnyOf(Kind):
    def __init__(self, *kinds: Kind):
        self.kinds = kinds
        self.allowed = " or ".join(k.allowed for k in kinds)

    def check(self, value: Any) -> Any:
        for kind in self.kinds:
            try:
                return kind.check(value)
            except ValueError:
                pass
        raise ValueError


class ListOf(Kind):
    def __init__(self, item: Kind, length: int | None = None):
        self.item, self.length = item, length
        self.allowed = f"a list of {f'{length} ' if length is not None else ''}values, each {item.allowed}"

    def check(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or (self.length is not None and len(value) != self.length):
            raise ValueError
        for v in value:
            self.item.check(v)
        return list(value)  # items as given: normalising them would change a run's identity hash


class Options(Kind):
    """Free-form keyword arguments for a factory, which checks them; merged key by key."""

    allowed = "a mapping of options"

    def check(self, value: Any) -> Any:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError
        return value


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Key:
    default: Any
    kind: Kind
    help: str = ""
    resume_ok: bool = False  # may change on --resume: says how to run, not what is computed

    def check(self, value: Any, where: str) -> Any:
        try:
            return self.kind.check(value)
        except (ValueError, TypeError):
            raise UserError(f"config key '{where}' must be {self.kind.allowed}, got {_shown(value)}") from None


def _shown(value: Any) -> str:
    text = _show(value) if value is None or isinstance(value, (bool, int, float)) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def infer(default: Any) -> Kind:
    """The kind of an undeclared key, from its default (sections registered without a schema)."""
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int()
    if isinstance(default, float):
        return Number()
    if isinstance(default, str):
        return Text()
    if isinstance(default, dict):
        return Options()
    if isinstance(default, list):
        return ListOf(Anything())
    return Anything()


SEED = Int(0, 2**32 - 1)  # the loop derives per-epoch seeds from it; 32 bits keep them in torch's range
TRISTATE = Choice("auto", True, False)

SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "dataset": Key("digits", Text(), "a registered data source (labelrep data info)"),
        "data_dir": Key(None, Nullable(Text()), "where the data lives; null: ~/.cache/labelrep/data", True),
        "download": Key(False, Bool(), "allow downloading (with checksums) when missing", True),
        "fraction": Key(1.0, Number(0, 1, lo_open=True), "fraction of the training set used"),
        "balanced": Key(True, Bool(), "class-balanced fraction (false: a seeded uniform draw)"),
        "subset_seed": Key(None, Nullable(SEED), "seed of the subset draw; null: the run's seed"),
        "val_size": Key(0, AnyOf(Int(0), Number(0, 1, lo_open=True, hi_open=True)),
                        "images held out for validation: a count, or a fraction of the training set"),
        "crop_padding": Key(None, Nullable(Int(0)), "random-crop padding in pixels; null: the dataset's default"),
        "flip": Key(None, Nullable(Bool()), "random horizontal flip; null: the dataset's default"),
        "options": Key({}, Options(), "extra keyword arguments for the data source"),
    },
    "label": {
        "name": Key("categorical", Text(), "label space (labelrep labels list)"),
        "options": Key({}, Options(), "keyword arguments of the label space"),
    },
    "model": {
        "name": Key("fastnet", Text(), "encoder (labelrep models list)"),
        "options": Key({}, Options(), "keyword arguments of the encoder"),
    },
    "optim": {
        "name": Key("sgd", Choice("sgd", "adamw"), "optimiser"),
        "lr": Key(0.05, Number(0, lo_open=True), "peak learning rate"),
        "momentum": Key(0.9, Number(0, 1, hi_open=True), "SGD momentum"),
        "nesterov": Key(True, Bool(), "Nesterov momentum (SGD, when momentum > 0)"),
        "weight_decay": Key(5e-4, Number(0), "weight decay"),
        "batch_size": Key(128, Int(1), "training batch size"),
        "schedule": Key("cosine", Choice("cosine", "step", "onecycle", "constant"), "learning-rate schedule"),
        "warmup_epochs": Key(0.0, Number(0), "linear warm-up in epochs (cosine, step, constant)"),
        "milestones": Key([0.5, 0.75], ListOf(Number(0, 1)),
                          "step schedule: fractions of training where the rate is multiplied by gamma"),
        "gamma": Key(0.1, Number(0, lo_open=True), "step schedule: the factor at each milestone"),
        "head_lr_mult": Key(1.0, Number(0, lo_open=True), "learning-rate multiplier of every head parameter"),
        "no_decay_bias_norm": Key(False, Bool(), "no weight decay on biases and norm layers"),
        "betas": Key([0.9, 0.999], ListOf(Number(0, 1, hi_open=True), length=2), "AdamW betas"),
    },
    "train": {
        "epochs": Key(15, Int(1), "epochs"),
        "steps": Key(None, Nullable(Int(1)), "train exactly this many optimisation steps (epochs derived); "
                                            "null: epochs decide"),
        "seed": Key(0, SEED, "seed of initialisation, data order and augmentation"),
        "ema": Key(None, Nullable(Number(0, 1, lo_open=True, hi_open=True)),
                   "EMA decay of the weights (e.g. 0.999); null: off"),
        "device": Key("auto", Pattern(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N or mps"),
                      "where to train", True),
        "amp": Key("auto", TRISTATE, "bfloat16 autocast: auto (on CUDA)"),
        "compile": Key("auto", TRISTATE, "torch.compile: auto (on CUDA)", True),
        "eval_batch_size": Key(1024, Int(1), "batch size for testing", True),
        "eval_every": Key(1, Int(1), "test (and validation) accuracy every N epochs; the last epoch always", True),
        "checkpoint": Key(True, Bool(), "write checkpoint.pt every epoch (needed for --resume)", True),
    },
    "mix": {
        "name": Key(None, Nullable(Text()), "mixing of images and targets (bc, bc_plus, mixup...); null: off"),
        "options": Key({}, Options(), "keyword arguments of the mixer"),
    },
    "target": {
        "name": Key("table", Text(), "target source between batch and loss: table, per_image, teacher"),
        "options": Key({}, Options(), "keyword arguments of the target source"),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    import copy

    return {section: {k: copy.deepcopy(key.default) for k, key in keys.items()} for section, keys in SCHEMA.items()}


def declare(section: str, keys: dict[str, Any], schema: dict[str, Kind | Key] | None = None) -> None:
    """Add (or extend) a section; values may be ``Key``s, or plain defaults whose kind comes from
    ``schema`` or, undeclared, from the default's type."""
    schema = schema or {}
    target = SCHEMA.setdefault(section, {})
    for name, value in keys.items():
        declared = schema.get(name)
        if isinstance(value, Key):
            key = value
        elif isinstance(declared, Key):
            key = declared
        else:
            key = Key(value, declared if isinstance(declared, Kind) else infer(value))
        key.check(key.default, f"{section}.{name}")  # a declaration whose default it refuses is a bug
        target[name] = key


def help_text(dotted: str) -> str:
    """``--epochs``' help: meaning, default and what is allowed, from the schema."""
    section, name = dotted.split(".")
    key = SCHEMA[section][name]
    return f"{key.help} (default {_show(key.default)}; {key.kind.allowed}; config key {dotted})"


def key_listing() -> str:
    lines = []
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            default = _show(key.default) if not isinstance(key.default, (dict, list)) else repr(key.default)
            lines.append(f"  {section}.{name} = {default}: {key.help} ({key.kind.allowed})")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's config table."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            default = _show(key.default) if not isinstance(key.default, (dict, list)) else \
                str(key.default).replace("'", "")
            meaning = key.help + (" (may change on `--resume`)" if key.resume_ok else "")
            rows.append(f"| `{section}.{name}` | `{default}` | {key.kind.allowed} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m labelrep.schema > table: the README's table
    print(markdown_table())
