"""Run configuration: nested defaults, YAML files, dotted command-line overrides, validation.

What every key allows is declared once in ``labelrep.schema``; sections other parts of the toolkit add
register their keys (and what they allow) with ``add_section``. Keys named ``options`` are free-form:
they go as keyword arguments to a factory, which checks them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from . import schema
from .errors import UserError

# Every key's default, kind and meaning live in labelrep.schema; DEFAULTS is the defaults part of it.
DEFAULTS: dict[str, dict[str, Any]] = schema.defaults()

# Keys added after run folders existed: at these values they change nothing a run computes, so they
# stay out of a run's identity and older study folders keep their run ids (and their finished runs).
NEUTRAL_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("optim", "name"): "sgd",
    ("optim", "head_lr_mult"): 1.0,
    ("optim", "no_decay_bias_norm"): False,
    ("optim", "betas"): [0.9, 0.999],
    ("train", "steps"): None,
    ("target",): {"name": "table", "options": {}},
    ("data", "imbalance"): None,
    ("data", "train_labels"): "clean",
    ("data", "train_labels_file"): None,
    ("target", "options", "centroids"): "previous",  # lwal before its default became the authors' batch
}


def add_section(name: str, defaults: dict[str, Any], keys: dict[str, schema.Kind | schema.Key] | None = None) -> None:
    """Let another part of the toolkit own a config section (or add keys to one).

    ``defaults`` maps key -> default (or a ``schema.Key``); ``keys`` declares what each key allows
    (a ``schema.Kind`` or ``schema.Key``); an undeclared key is checked by its default's type.
    """
    schema.declare(name, defaults, keys)
    DEFAULTS.setdefault(name, {}).update(schema.defaults()[name])


def _merge(config: dict, layer: Any) -> None:
    if not isinstance(layer, dict):
        raise UserError(f"a config must be a mapping of sections ({', '.join(schema.SCHEMA)}), got {layer!r}")
    for section, values in layer.items():
        keys = schema.SCHEMA.get(section)
        if keys is None:
            raise UserError(f"unknown config section '{section}'; known sections: {', '.join(schema.SCHEMA)}")
        if not isinstance(values, dict):
            raise UserError(f"config section '{section}' must be a mapping of keys ({', '.join(keys)}), "
                            f"got {values!r}")
        for name, value in values.items():
            where = f"{section}.{name}"
            if name not in keys:
                raise UserError(f"unknown config key '{where}'; known keys under {section}: {', '.join(keys)}")
            value = keys[name].check(value, where)
            if isinstance(keys[name].kind, schema.Options):
                config[section][name] = {**config[section][name], **value}
            else:
                config[section][name] = value


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(f"sets key {key!r} twice (lines {first} and {second})")
        self.line = second


class Loader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-5`` as a float (YAML 1.1 wants a dot: ``1.0e-5``) and refuses a key
    set twice in one mapping (the second would silently win)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class says so
                    pass
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_yaml(text: str):
    """YAML text -> Python, with the loader above (floats in scientific notation, no duplicate keys)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506  (a SafeLoader subclass)


def parse_value(raw: str) -> Any:
    """A command-line value, read as YAML (``1e-5`` a float, ``[1, 2]`` a list, ``null`` None)."""
    if raw == "":
        return None
    try:
        return read_yaml(raw)
    except DuplicateKeyError as err:
        raise UserError(f"value {raw!r} {err}") from None
    except yaml.YAMLError:
        return raw


def parse_overrides(pairs: Iterable[str]) -> dict:
    """``["optim.lr=0.05", "label.options.alpha=0.2"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"override {pair!r} must look like section.key=value")
        dotted, raw = pair.split("=", 1)
        value = parse_value(raw)
        node = tree
        parts = dotted.strip().split(".")
        if not all(parts):
            raise UserError(f"override {pair!r} has an empty key")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {pair!r} conflicts with another override")
        if isinstance(node.get(parts[-1]), dict):
            raise UserError(f"override {pair!r} conflicts with another override")
        node[parts[-1]] = value
    return tree


def load_yaml(path: str | Path) -> dict:
    """A YAML file holding a mapping; every way it can be wrong is a UserError in one sentence."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file {path} does not exist")
    if not path.is_file():
        raise UserError(f"config file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not a text (UTF-8) YAML file; it looks binary") from None
    except OSError as err:
        raise UserError(f"cannot read config file {path} ({err.strerror})") from None
    if "\x00" in text:
        raise UserError(f"config file {path} is not a text YAML file; it holds NUL bytes")
    try:
        data = read_yaml(text)
    except DuplicateKeyError as err:
        raise UserError(f"config file {path} {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections ({', '.join(schema.SCHEMA)})")
    return data


def resolve(*layers: dict | None) -> dict:
    """Defaults, then each layer on top (file, then command line); every value checked by the schema."""
    config = copy.deepcopy(DEFAULTS)
    for layer in layers:
        if layer is not None and layer != {}:
            _merge(config, copy.deepcopy(layer))
    return config


def flatten(config: dict) -> dict[str, Any]:
    """``{"optim": {"lr": 1}, "label": {"options": {"a": 2}}}`` -> ``{"optim.lr": 1, "label.options.a": 2}``."""
    flat: dict[str, Any] = {}
    for section, keys in config.items():
        for name, value in keys.items():
            if isinstance(value, dict):  # options: one entry per option (none when empty)
                for option, v in value.items():
                    flat[f"{section}.{name}.{option}"] = v
            else:
                flat[f"{section}.{name}"] = value
    return flat


# What a run computes with that its config names but does not spell out (a named recipe's values).
# A part of the toolkit adds a function config -> dict; what they return joins the run's identity, so
# changing a recipe's values gives its runs new ids instead of leaving stale ones in study folders.
IDENTITY_PARTS: list[Callable[[dict], dict]] = []


def add_identity_part(part: Callable[[dict], dict]) -> Callable[[dict], dict]:
    IDENTITY_PARTS.append(part)
    return part


def identity(config: dict) -> dict:
    """The config without keys at their neutral defaults (see ``NEUTRAL_DEFAULTS``), plus the
    ``IDENTITY_PARTS`` that apply."""
    cfg = copy.deepcopy(config)
    for path, neutral in NEUTRAL_DEFAULTS.items():
        node = cfg
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == neutral:
            del node[path[-1]]
    computed_with = {}
    for part in IDENTITY_PARTS:
        computed_with.update(part(config) or {})
    if computed_with:
        cfg["computed_with"] = computed_with
    return cfg


def config_hash(config: dict) -> str:
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
