"""Study files: expansion into runs, run identity, and one clear error per mistake."""
from __future__ import annotations

from pathlib import Path

import pytest

from labelrep.errors import UserError
from labelrep.study import load_study, parse_study, run_id

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def study(**overrides):
    data = {
        "name": "t",
        "base": {"data": {"dataset": "digits"}, "train": {"epochs": 2}},
        "axes": {
            "label": {"onehot": {"label.name": "categorical"},
                      "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.2}}}},
            "data.fraction": [0.5, 1.0],
        },
        "seeds": 2,
        "evaluations": ["accuracy"],
    }
    data.update(overrides)
    return data


def test_grid_expands_to_product_with_resolved_configs():
    s = parse_study(study())
    assert len(s.runs) == 2 * 2 * 2
    cells = [r.cell for r in s.runs]
    assert cells[0] == {"label": "onehot", "data.fraction": 0.5, "seed": 0}
    assert cells[-1] == {"label": "smooth", "data.fraction": 1.0, "seed": 1}
    last = s.runs[-1].config
    assert last["label"] == {"name": "smoothed", "options": {"alpha": 0.2}}
    assert last["data"]["fraction"] == 1.0 and last["train"]["seed"] == 1 and last["train"]["epochs"] == 2
    assert len({r.id for r in s.runs}) == len(s.runs)


def test_run_identity_is_the_config_hash_without_the_data_location():
    a = parse_study(study()).runs[3]
    moved = parse_study(study(base={"data": {"dataset": "digits", "data_dir": "/elsewhere"},
                                    "train": {"epochs": 2}})).runs[3]
    assert a.id == moved.id == run_id(a.config)
    longer = parse_study(study(base={"data": {"dataset": "digits"}, "train": {"epochs": 3}})).runs[3]
    assert longer.id != a.id


def test_exclude_and_where():
    s = parse_study(study(exclude=[{"label": "smooth", "data.fraction": 0.5}],
                          evaluations=["accuracy", {"name": "accuracy", "where": {"data.fraction": 1.0}}]))
    assert len(s.runs) == 6
    assert not any(r.cell["label"] == "smooth" and r.cell["data.fraction"] == 0.5 for r in s.runs)
    assert s.evaluations[1].key == s.evaluations[0].key  # same options: same result file
    counts = {r.cell["data.fraction"]: len(s.evaluations_for(r)) for r in s.runs}
    assert counts == {0.5: 1, 1.0: 2}


@pytest.mark.parametrize("change, message", [
    ({"axes": {"data.fraction": []}}, "axis 'data.fraction' is empty"),
    ({"axes": {"label": {}}}, "axis 'label' is empty"),
    ({"axes": {"data.fractoin": [0.5]}}, "unknown config key 'data.fractoin'"),
    ({"base": {"optim": {"lrate": 1}}}, "unknown config key 'optim.lrate'"),
    ({"axes": {"data.fraction": [0.5], "data": {"a": {"data.fraction": 0.2}}}}, "conflicting values"),
    ({"axes": {"label": {"a": {"label.name": "categorical", "label": {"name": "smoothed"}}}}}, "twice"),
    ({"axes": {"train.seed": [1, 2]}}, "conflicts with 'seeds'"),
    ({"axes": {"data.fraction": [0.5, 0.5]}}, "repeats a value"),
    ({"axes": {"x": {"a": {"optim.lr": 0.1}, "b": {"optim.lr": 0.1}}}}, "resolve to the same config"),
    ({"seeds": 0}, "'seeds' must be at least 1"),
    ({"evaluations": ["acuracy"]}, "unknown evaluation 'acuracy'"),
    ({"evaluations": [{"accuracy": {"bogus": 1}}]}, "accepts: max_images"),
    ({"evaluations": [{"name": "accuracy", "where": {"model": "x"}}]}, "does not have"),
    ({"exclude": [{"label": "nope"}]}, "not a value of that axis"),
    ({"grid": {}}, "unknown study key(s) grid"),
    ({"base": {"train": {"checkpoint": False}}}, "needs checkpoints"),
    ({"threads": 0}, "'threads' must be a positive integer"),
])
def test_mistakes_are_one_clear_user_error(change, message):
    with pytest.raises(UserError, match=None) as err:
        parse_study(study(**change))
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["quick", "paper-cifar10", "paper-cifar100", "paper-cifar10-cpu", "robustness-cifar10",
                                  "robustness-cifar10-check", "tsne-cifar10"])
def test_ready_studies_parse(name):
    s = load_study(CONFIGS / f"{name}.yaml")
    assert s.name == name and s.runs and s.evaluations
    from labelrep.data.sources import DATASETS
    from labelrep.labels import LABEL_SPACES
    from labelrep.models import ENCODERS

    labels = {r.config["label"]["name"] for r in s.runs}
    assert "categorical" in labels and labels <= set(LABEL_SPACES.names())
    assert {r.config["model"]["name"] for r in s.runs} <= set(ENCODERS.names())
    assert {r.config["data"]["dataset"] for r in s.runs} <= set(DATASETS.names())


def test_the_documented_example_parses():
    import yaml

    from labelrep.study import spec

    example = yaml.safe_load(spec.__doc__.split("```yaml")[1].split("```")[0])
    s = parse_study(example)
    assert len(s.runs) == (2 * 3 - 1) * 2  # one cell excluded, two seeds
    assert [e.name for e in s.evaluations] == ["accuracy", "robustness", "robustness", "features"]
    assert [len(s.evaluations_for(r)) for r in s.runs[:2]] == [3, 3]  # fraction 0.1: no pgd
