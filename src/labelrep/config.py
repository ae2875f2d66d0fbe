"""Run configuration: nested defaults, YAML files, dotted command-line overrides, validation.

Sections other parts of the toolkit add register their defaults with ``add_section``.
Keys named ``options`` are free-form: they go as keyword arguments to a factory, which checks them.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import UserError

DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "dataset": "digits",      # a registered data source (labelrep data info)
        "data_dir": None,         # where the data lives; default ~/.cache/labelrep/data
        "download": False,        # allow downloading (with checksums) when missing
        "fraction": 1.0,          # fraction of the training set, in (0, 1]
        "balanced": True,         # class-balanced fraction (False: a seeded uniform draw)
        "subset_seed": None,      # seed of the subset draw; None: the run's seed
        "val_size": 0,            # images held out for validation (a count, or a fraction < 1)
        "crop_padding": None,     # random-crop padding; None: the dataset's default
        "flip": None,             # random horizontal flip; None: the dataset's default
        "options": {},            # extra keyword arguments for the data source
    },
    "label": {"name": "categorical", "options": {}},
    "model": {"name": "fastnet", "options": {}},
    "optim": {
        "name": "sgd",            # sgd | adamw
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "schedule": "cosine",     # cosine | step | onecycle | constant
        "warmup_epochs": 0.0,     # linear warm-up (cosine, step)
        "milestones": [0.5, 0.75],  # step schedule: fractions of training where lr *= gamma
        "gamma": 0.1,
        "head_lr_mult": 1.0,      # learning-rate multiplier of the head (weight and bias)
        "no_decay_bias_norm": False,  # no weight decay on biases and normalisation layers
        "betas": [0.9, 0.999],    # AdamW
    },
    "train": {
        "epochs": 15,
        "steps": None,            # exact optimisation steps (epochs derived, the last cut short); None: epochs
        "seed": 0,
        "ema": None,              # EMA decay of the weights (e.g. 0.999); None: off
        "device": "auto",         # auto | cpu | cuda | cuda:N
        "amp": "auto",            # bfloat16 autocast: auto (on CUDA) | true | false
        "compile": "auto",        # torch.compile: auto (on CUDA) | true | false
        "eval_batch_size": 1024,
        "eval_every": 1,          # test (and validation) accuracy every N epochs; the last epoch always
        "checkpoint": True,
    },
    # Mixing of images and targets (BC, BC+, mixup...): a registered mixer name, or None.
    "mix": {"name": None, "options": {}},
    # Where each sample's target comes from (labelrep.train.targets): the class table, a per-image
    # table, a teacher run...
    "target": {"name": "table", "options": {}},
}

# Keys added after run folders existed: at these values they change nothing a run computes, so they
# stay out of a run's identity and older study folders keep their run ids (and their finished runs).
NEUTRAL_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("optim", "name"): "sgd",
    ("optim", "head_lr_mult"): 1.0,
    ("optim", "no_decay_bias_norm"): False,
    ("optim", "betas"): [0.9, 0.999],
    ("train", "steps"): None,
    ("target",): {"name": "table", "options": {}},
}


def add_section(name: str, defaults: dict[str, Any]) -> None:
    """Let another part of the toolkit own a config section (``mix``, ``eval``...)."""
    DEFAULTS.setdefault(name, {}).update(defaults)


def _merge(base: dict, update: dict, path: str) -> dict:
    for key, value in update.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in base:
            known = ", ".join(sorted(base)) or "none"
            raise UserError(f"unknown config key '{where}'; known keys{' under ' + path if path else ''}: {known}")
        if isinstance(base[key], dict) and key != "options":
            if not isinstance(value, dict):
                raise UserError(f"config key '{where}' must be a mapping, got {value!r}")
            _merge(base[key], value, where)
        elif key == "options":
            if not isinstance(value, dict):
                raise UserError(f"config key '{where}' must be a mapping, got {value!r}")
            base[key] = {**base[key], **value}
        else:
            base[key] = _check_type(base[key], value, where)
    return base


def _check_type(default: Any, value: Any, where: str) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool) or (isinstance(default, bool) and value in ("auto",)):
            return value
    elif isinstance(default, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return type(default)(value) if isinstance(default, float) else value
    elif isinstance(default, str) and isinstance(value, (str, bool)):
        return value
    elif isinstance(default, list) and isinstance(value, list):
        return value
    raise UserError(f"config key '{where}' expects a {type(default).__name__}, got {value!r}")


def parse_overrides(pairs: Iterable[str]) -> dict:
    """``["optim.lr=0.05", "label.options.alpha=0.2"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"override {pair!r} must look like section.key=value")
        dotted, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = dotted.strip().split(".")
        if not all(parts):
            raise UserError(f"override {pair!r} has an empty key")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {pair!r} conflicts with another override")
        node[parts[-1]] = value
    return tree


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (data, label, model, optim, train)")
    return data


def resolve(*layers: dict | None) -> dict:
    """Defaults, then each layer on top (file, then command line); validated."""
    config = copy.deepcopy(DEFAULTS)
    for layer in layers:
        if layer:
            _merge(config, copy.deepcopy(layer), "")
    return config


def identity(config: dict) -> dict:
    """The config without keys at their neutral defaults (see ``NEUTRAL_DEFAULTS``)."""
    cfg = copy.deepcopy(config)
    for path, neutral in NEUTRAL_DEFAULTS.items():
        node = cfg
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == neutral:
            del node[path[-1]]
    return cfg


def config_hash(config: dict) -> str:
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
