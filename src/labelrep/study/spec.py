"""A study file: a base run config, axes to sweep, seeds and evaluations; parsed, checked, expanded.

```yaml
name: quick                      # default: the file's stem; the output folder is runs/<name>
base:                            # a run config (sections data, label, model, optim, train, mix)
  data: {dataset: digits}
  train: {epochs: 8}
axes:
  label:                         # a named axis: variant name -> config fragment
    categorical: {label.name: categorical}
    smoothed: {label: {name: smoothed, options: {alpha: 0.1}}}
  data.fraction: [0.1, 0.5, 1.0] # a config key -> its values
seeds: [0, 1]                    # or a count: 3 means 0, 1, 2
threads: 1                       # optional: torch CPU threads per run (--threads overrides)
exclude:                         # optional: cells to leave out (axis or seed -> value or list of values)
  - {label: smoothed, data.fraction: 0.1}
evaluations:                     # by registry name (labelrep.evaluate.EVALUATIONS), optionally with options
  - accuracy
  - robustness: {attacks: [fgsm], protocols: [paper]}
  - name: robustness             # the long form can limit an evaluation to some cells
    options: {attacks: [pgd]}
    where: {data.fraction: 1.0}  # (and seed: 0, say)
  - features: {figure: true}     # figure: true -> the evaluation draws into the run folder; the report shows it
                                 # (features watches training: snapshots at fractions of the steps)
```

The grid is the product of the axes (in file order) times the seeds. A run's identity is a hash of
its resolved config (without ``data.data_dir`` and ``data.download``, which say where the data is, not
what is computed), so the same cell always lands in the same run folder, ``runs/<id>``.

Runs that depend on runs: a config value ``{study_run: {axis: value, ...}}`` anywhere in a cell's
config names the run of this study whose cell is this one with those axis values replaced (the same
seed unless the mapping gives ``seed``). The runner trains the parent first and puts the parent's run
folder in its place; the child's identity hashes the parent's run id instead of the reference.

```yaml
axes:
  generation:
    R1: {}
    R2: {target: {name: teacher, options: {run: {study_run: {generation: R1}}}}}
```
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..errors import UserError
from ..train.preflight import check_names

TOP_KEYS = ("name", "description", "base", "axes", "seeds", "exclude", "evaluations", "threads")
# Keys that say where the data lives, not what the run computes: left out of a run's identity.
LOCATION_KEYS = (("data", "data_dir"), ("data", "download"))
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class Evaluation:
    name: str
    options: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)  # axis -> allowed values; empty: every run

    def applies(self, cell: dict) -> bool:
        return all(cell.get(axis) in values for axis, values in self.where.items())  # "seed" included

    @property
    def key(self) -> str:
        """File-name-safe identity of this evaluation with its options."""
        text = json.dumps(self.options, sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass
class Axis:
    name: str
    values: list            # labels shown in tables (variant names, or the config values themselves)
    fragments: list[dict]   # config fragment that each value sets

    @property
    def keys(self) -> set[str]:
        return set().union(*(_leaf_keys(f) for f in self.fragments))


REFERENCE = "study_run"


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {REFERENCE}


@dataclass
class RunSpec:
    id: str                 # hash of the resolved config (location keys left out; parents by their ids)
    cell: dict              # axis name -> value label, plus "seed"
    config: dict            # the resolved run config; a reference reads {study_run: <parent id>}
    parents: list[str] = field(default_factory=list)  # ids of the runs this one depends on
    references: list[tuple] = field(default_factory=list)  # (config key path, parent id) per reference

    def config_in(self, folder_of) -> dict:
        """The config to train: each reference replaced by ``folder_of(parent id)`` (a path, as text)."""
        if not self.references:
            return self.config
        cfg = copy.deepcopy(self.config)
        for path, parent in self.references:
            node = cfg
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = str(folder_of(parent))
        return cfg


@dataclass
class Study:
    name: str
    description: str
    base: dict
    axes: list[Axis]
    seeds: list[int]
    evaluations: list[Evaluation]
    runs: list[RunSpec]
    source: dict            # the file's content, as read
    threads: int | None = None  # torch threads per run (how to run, not what: not in a run's identity)

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes] + ["seed"]

    def evaluations_for(self, run: RunSpec) -> list[Evaluation]:
        return [e for e in self.evaluations if e.applies(run.cell)]


def run_id(config: dict) -> str:
    """A run's identity: the hash of its resolved config without the data's location."""
    cfg = copy.deepcopy(config)
    for section, key in LOCATION_KEYS:
        cfg.get(section, {}).pop(key, None)
    return config_mod.config_hash(cfg)


def _nest(fragment: Any, where: str) -> dict:
    """``{"label.name": "x", "optim": {"lr": 1}}`` -> nested dict; a key set twice is a conflict."""
    if not isinstance(fragment, dict):
        raise UserError(f"{where} must be a mapping of config keys, got {fragment!r}")
    out: dict = {}
    for dotted, value in fragment.items():
        parts = str(dotted).split(".")
        if not all(parts):
            raise UserError(f"{where} has an empty config key in {dotted!r}")
        if isinstance(value, dict) and parts[-1] != "options" and not is_reference(value):
            value = _nest(value, where)
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"{where} sets {'.'.join(parts[:i + 1])} twice (conflicting values)")
        last = parts[-1]
        if last in node:
            if isinstance(node[last], dict) and isinstance(value, dict):
                for k in value:
                    if k in node[last]:
                        raise UserError(f"{where} sets {dotted}.{k} twice (conflicting values)")
                node[last] = {**node[last], **value}
                continue
            raise UserError(f"{where} sets {dotted} twice (conflicting values)")
        node[last] = value
    return out


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in tree.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        keys |= _leaf_keys(v, path) if isinstance(v, dict) and v else {path}
    return keys


def _label(value: Any) -> Any:
    """How a swept config value shows in tables: scalars as they are, the rest as compact text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _parse_axes(raw: Any) -> list[Axis]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise UserError("'axes' must be a mapping: a config key -> list of values, or an axis name -> "
                        "mapping of variant name -> config fragment")
    axes = []
    for name, spec in raw.items():
        name = str(name)
        if name == "seed" or name == "train.seed":
            raise UserError(f"axis {name!r} conflicts with 'seeds'; list the seeds under 'seeds'")
        if isinstance(spec, list):
            if not spec:
                raise UserError(f"axis {name!r} is empty; give it at least one value")
            if "." not in name:
                raise UserError(f"axis {name!r} lists values but is not a config key like data.fraction; "
                                "for a named axis give a mapping of variant name -> config fragment")
            labels = [_label(v) for v in spec]
            if len(set(map(json.dumps, labels))) != len(labels):
                raise UserError(f"axis {name!r} repeats a value")
            axes.append(Axis(name, labels, [_nest({name: v}, f"axis {name!r}") for v in spec]))
        elif isinstance(spec, dict):
            if not spec:
                raise UserError(f"axis {name!r} is empty; give it at least one variant")
            fragments = []
            for variant, fragment in spec.items():
                fragments.append(_nest(fragment if fragment is not None else {}, f"axis {name!r} variant {variant!r}"))
            axes.append(Axis(name, [str(v) for v in spec], fragments))
        else:
            raise UserError(f"axis {name!r} must be a list of values or a mapping of variants, got {spec!r}")
    # Two axes that set the same key would silently overwrite each other.
    for a, b in itertools.combinations(axes, 2):
        shared = a.keys & b.keys
        if shared:
            raise UserError(f"axes {a.name!r} and {b.name!r} both set {', '.join(sorted(shared))} "
                            "(conflicting values); sweep each config key on one axis only")
    return axes


def _parse_seeds(raw: Any) -> list[int]:
    if raw is None:
        return [0]
    if isinstance(raw, bool):
        raise UserError(f"'seeds' must be a count or a list of integers, got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise UserError(f"'seeds' must be at least 1, got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise UserError("'seeds' repeats a seed")
        return list(raw)
    raise UserError(f"'seeds' must be a count or a non-empty list of integers, got {raw!r}")


def _parse_evaluations(raw: Any, axes: list[Axis], seeds: list[int]) -> list[Evaluation]:
    from ..evaluate import EVALUATIONS
    from ..evaluate.registry import accepted_options, unknown_options

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError("'evaluations' must be a list of evaluation names (optionally name: {options})")
    out: list[Evaluation] = []
    for item in raw:
        if isinstance(item, str):
            ev = Evaluation(item)
        elif isinstance(item, dict) and "name" in item:
            extra = set(item) - {"name", "options", "where"}
            if extra:
                raise UserError(f"evaluation {item['name']!r} has unknown keys {sorted(extra)}; "
                                "use name, options and where")
            if not isinstance(item.get("options") or {}, dict):
                raise UserError(f"options of evaluation {item['name']!r} must be a mapping")
            ev = Evaluation(str(item["name"]), dict(item.get("options") or {}),
                            _parse_where(item.get("where"), axes, f"'where' of evaluation {item['name']!r}", seeds))
        elif isinstance(item, dict) and len(item) == 1:
            (name, options), = item.items()
            if options is not None and not isinstance(options, dict):
                raise UserError(f"options of evaluation {name!r} must be a mapping, got {options!r}")
            ev = Evaluation(str(name), dict(options or {}))
        else:
            raise UserError(f"evaluation entry {item!r} must be a name or 'name: {{options}}'")
        if ev.name not in EVALUATIONS:
            raise UserError(f"unknown evaluation {ev.name!r}; known: {', '.join(EVALUATIONS.names())}")
        if unknown_options(ev.name, ev.options):
            raise UserError(f"evaluation {ev.name!r} got options {sorted(ev.options)}; it accepts: "
                            f"{', '.join(accepted_options(ev.name)) or 'no options'}")
        _check_figure(ev)
        if any(e.key == ev.key and e.where == ev.where for e in out):
            raise UserError(f"evaluation {ev.name!r} is listed twice with the same options")
        out.append(ev)
    return out


def _check_figure(ev: Evaluation) -> None:
    """``figure``: true (the run folder's figures/), false, or a relative path that stays in the run folder."""
    figure = ev.options.get("figure")
    if figure is None or isinstance(figure, bool):
        return
    if not isinstance(figure, str) or not figure.strip():
        raise UserError(f"option figure of evaluation {ev.name!r} must be true, false or a file name, got {figure!r}")
    if figure_escapes(figure):
        raise UserError(f"option figure of evaluation {ev.name!r} is {figure!r}, which leaves the run folder; "
                        "give true or a relative file name such as figures/curve.png")


def figure_escapes(figure: str) -> bool:
    import os.path
    from pathlib import PurePath

    normal = os.path.normpath(figure)
    return PurePath(figure).is_absolute() or normal == ".." or normal.startswith(".." + os.sep) or normal == "."


def _parse_where(raw: Any, axes: list[Axis], what: str, seeds: list[int] | None = None) -> dict:
    """``{axis: value or [values]}`` -> ``{axis: [value labels]}``, checked against the axes (and
    ``seed`` against the seeds)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{what} must be a mapping: axis name -> value (or list of values)")
    names = {a.name: a for a in axes}
    if seeds is not None:
        names["seed"] = Axis("seed", list(seeds), [])
    checked = {}
    for axis, value in raw.items():
        if axis not in names:
            raise UserError(f"{what} names axis {axis!r}, which the study does not have; "
                            f"axes: {', '.join(names) or 'none'}")
        values = value if isinstance(value, list) else [value]
        known = names[axis].values
        for v in values:
            if _label(v) not in known:
                raise UserError(f"{what} gives {axis}={v!r}, not a value of that axis ({known})")
        checked[axis] = [_label(v) for v in values]
    return checked


def _parse_exclude(raw: Any, axes: list[Axis], seeds: list[int]) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError("'exclude' must be a list of mappings: axis name -> value (or list of values)")
    return [_parse_where(rule, axes, "an 'exclude' entry", seeds) for rule in raw]


def _references(tree: Any, path: tuple = ()) -> list[tuple[tuple, dict]]:
    """``(key path, mapping of the reference)`` for every ``{study_run: ...}`` in a config."""
    if is_reference(tree):
        return [(path, tree[REFERENCE])]
    if isinstance(tree, dict):
        return [ref for k, v in tree.items() for ref in _references(v, (*path, k))]
    if isinstance(tree, list):
        return [ref for i, v in enumerate(tree) for ref in _references(v, (*path, i))]
    return []


def _cell_text(cell: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def _referenced_cell(cell: dict, ref: Any, axes: list[Axis], seeds: list[int], where: str) -> dict:
    """The cell a reference names: this cell with the given axis values (and seed) replaced."""
    if not isinstance(ref, dict) or not ref:
        raise UserError(f"{where}: study_run must map axis names to values, e.g. {{study_run: {{generation: R1}}}}")
    names = {a.name: a for a in axes}
    target = dict(cell)
    for axis, value in ref.items():
        if axis == "seed":
            if value not in seeds:
                raise UserError(f"{where}: study_run asks for seed {value!r}, not one of the seeds {seeds}")
            target["seed"] = value
            continue
        if axis not in names:
            raise UserError(f"{where}: study_run names axis {axis!r}, which the study does not have; "
                            f"axes: {', '.join(names) or 'none'}")
        known = names[axis].values
        match = [v for v in known if v == _label(value)] or [v for v in known if str(v) == str(value)]
        if not match:
            raise UserError(f"{where}: study_run gives {axis}={value!r}, not a value of that axis ({known})")
        target[axis] = match[0]
    return target


def _identify(cells: list[tuple[dict, dict]], axes: list[Axis], seeds: list[int]) -> list[RunSpec]:
    """Run ids, parents first: a reference is hashed as its parent's id. Refuses references to a
    run that is not in the study, to the run itself, and cycles."""
    index = {json.dumps(cell, sort_keys=True, default=str): i for i, (cell, _) in enumerate(cells)}
    edges: list[list[tuple[tuple, int]]] = []
    for cell, cfg in cells:
        mine = []
        for path, ref in _references(cfg):
            where = f"run {_cell_text(cell)}, {'.'.join(map(str, path))}"
            target = _referenced_cell(cell, ref, axes, seeds, where)
            j = index.get(json.dumps(target, sort_keys=True, default=str))
            if j is None:
                raise UserError(f"{where}: study_run names run {_cell_text(target)}, which the study does not "
                                "have ('exclude' leaves it out)")
            if cells[j][0] == cell:
                raise UserError(f"{where}: study_run names the run itself; a run can only depend on another run")
            mine.append((path, j))
        edges.append(mine)
    specs: dict[int, RunSpec] = {}

    def visit(i: int, trail: list[int]) -> RunSpec:
        if i in specs:
            return specs[i]
        if i in trail:
            loop = " -> ".join(_cell_text(cells[k][0]) for k in [*trail[trail.index(i):], i])
            raise UserError(f"runs depend on each other in a cycle: {loop}")
        cell, cfg = cells[i]
        refs = [(path, visit(j, [*trail, i]).id) for path, j in edges[i]]
        if refs:
            cfg = copy.deepcopy(cfg)
            for path, parent in refs:
                node = cfg
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = {REFERENCE: parent}
        specs[i] = RunSpec(run_id(cfg), cell, cfg, list(dict.fromkeys(p for _, p in refs)), refs)
        return specs[i]

    return [visit(i, []) for i in range(len(cells))]


def parse_study(data: dict, default_name: str = "study") -> Study:
    """Check a study mapping and expand it into runs; every mistake is a UserError naming the key."""
    if not isinstance(data, dict):
        raise UserError("a study file must hold a mapping with keys base, axes, seeds, evaluations")
    if not data:
        raise UserError("the study is empty; give it at least 'base' or 'axes' (see configs/quick.yaml)")
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise UserError(f"unknown study key(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(TOP_KEYS)}")
    name = str(data.get("name") or default_name)
    if not set(name) <= NAME_CHARS or not name[:1].isalnum():
        raise UserError(f"study name {name!r} must start with a letter or digit and use only letters, digits, "
                        "'-', '_' and '.' (it names the study folder)")
    base = _nest(data["base"] if data.get("base") is not None else {}, "'base'")
    config_mod.resolve(base)  # unknown keys and wrong types fail here, before any run starts
    axes = _parse_axes(data.get("axes"))
    seeds = _parse_seeds(data.get("seeds"))
    if "seed" in base.get("train", {}):
        raise UserError("'base' sets train.seed; list the seeds under 'seeds' instead")
    if base.get("train", {}).get("checkpoint") is False:
        raise UserError("'base' turns train.checkpoint off; a study needs checkpoints to resume cut-off runs")
    evaluations = _parse_evaluations(data.get("evaluations"), axes, seeds)
    exclude = _parse_exclude(data.get("exclude"), axes, seeds)

    cells: list[tuple[dict, dict]] = []  # (cell with seed, resolved config with references)
    for combo in itertools.product(*[range(len(a.values)) for a in axes]):
        cell = {a.name: a.values[i] for a, i in zip(axes, combo)}
        for seed in seeds:
            if any(all({**cell, "seed": seed}[k] in v for k, v in rule.items()) for rule in exclude):
                continue
            layers = [base, *[a.fragments[i] for a, i in zip(axes, combo)], {"train": {"seed": seed}}]
            try:
                cfg = config_mod.resolve(*layers)
                check_names(cfg)  # every cell checked before the first run starts
            except UserError as err:
                where = ", ".join(f"{k}={v}" for k, v in cell.items())
                raise UserError(f"run {where or '(base)'}: {err}") from None
            if cfg["train"]["checkpoint"] is False:
                raise UserError("an axis turns train.checkpoint off; a study needs checkpoints to resume runs")
            cells.append(({**cell, "seed": seed}, cfg))
    if not cells:
        raise UserError("the study has no runs left after 'exclude'")
    runs = _identify(cells, axes, seeds)
    seen: dict[str, dict] = {}
    for spec in runs:
        if spec.id in seen:
            raise UserError(f"runs {seen[spec.id]} and {spec.cell} resolve to the same config "
                            "(conflicting values: an axis value repeats what another already sets)")
        seen[spec.id] = spec.cell
    threads = data.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"'threads' must be a positive integer, got {threads!r}")
    return Study(name, str(data.get("description") or ""), base, axes, seeds, evaluations, runs, data, threads)


def load_study(path: str | Path) -> Study:
    path = Path(path)
    return parse_study(config_mod.load_yaml(path), default_name=path.stem)
