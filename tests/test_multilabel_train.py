"""Multi-label runs end to end: the head's learning-rate group, refusals for one-class-per-image code,
and a short real training on CIFAR-10 mosaics that learns (mAP above the chance level)."""
from __future__ import annotations

import numpy as np
import pytest

import labelrep
from labelrep import config as config_mod
from labelrep.errors import UserError
from labelrep.evaluate import run_evaluation
from labelrep.evaluate.multilabel import read_predictions
from labelrep.train.optim import build_optimizer
from labelrep.train.setup import build_run

from test_multilabel_data import write_voc_tree


def _voc_config(root, **over) -> dict:
    cfg = {"data": {"dataset": "voc2012", "data_dir": str(root), "options": {"image_size": 32}},
           "label": {"name": "multihot", "options": {"alpha": 0.1, "scheme": 2}}, "target": {"name": "per_image"},
           "model": {"name": "resnet18", "options": {"stem": "small"}},
           "optim": {"head_lr_mult": 10.0, "lr": 0.01, "batch_size": 4}, "train": {"epochs": 1, "device": "cpu"}}
    for section, values in over.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


def test_head_learning_rate_group_holds_head_weight_and_bias(tmp_path, one_torch_thread):
    write_voc_tree(tmp_path / "voc")
    parts = build_run(config_mod.resolve(_voc_config(tmp_path / "voc")))
    optimizer = build_optimizer(parts.model, parts.config["optim"])
    head = {id(parts.model.head.weight), id(parts.model.head.bias)}
    fast = [g for g in optimizer.param_groups if g["lr"] == pytest.approx(0.1)]
    assert len(fast) == 1 and {id(p) for p in fast[0]["params"]} == head  # weight and bias, nothing else
    slow = [p for g in optimizer.param_groups if g["lr"] == pytest.approx(0.01) for p in g["params"]]
    assert len(slow) == len(list(parts.model.encoder.parameters()))


def test_one_class_per_image_code_refuses_multi_label(tmp_path, one_torch_thread):
    write_voc_tree(tmp_path / "voc")
    with pytest.raises(UserError, match="is multi-label.*multihot"):
        build_run(config_mod.resolve(_voc_config(tmp_path / "voc", label={"name": "categorical", "options": {}})))
    with pytest.raises(UserError, match="class-balanced fraction needs one class per image"):
        build_run(config_mod.resolve(_voc_config(tmp_path / "voc", data={"fraction": 0.5})))
    with pytest.raises(UserError, match="target.name=per_image"):
        labelrep.train(_voc_config(tmp_path / "voc", target={"name": "table"}))
    run = labelrep.train(_voc_config(tmp_path / "voc", model={"name": "fastnet", "options": {"widths": [8, 8, 8]}}),
                         out=tmp_path / "run")
    for name in ("accuracy", "calibration"):
        with pytest.raises(UserError, match=f"evaluation '{name}' assumes one class per image"):
            run_evaluation(name, run)


def test_short_training_on_mosaics_learns(cifar_tiny, tmp_path, one_torch_thread):
    cfg = {"data": {"dataset": "mosaic", "data_dir": str(cifar_tiny),
                    "options": {"train_size": 1000, "test_size": 200, "empty": 0.5, "difficult": 0.1, "tile": 8}},
           "label": {"name": "multihot", "options": {"alpha": 0.1, "scheme": 1}}, "target": {"name": "per_image"},
           "model": {"name": "fastnet", "options": {"widths": [16, 16, 32]}},
           "optim": {"lr": 0.2, "batch_size": 50}, "train": {"epochs": 8, "device": "cpu", "eval_every": 8}}
    run = labelrep.train(cfg, out=tmp_path / "run")
    rows = run_evaluation("multilabel", run, figure=str(tmp_path / "pr.png"), crops=["none", "five"])
    value = {r["metric"]: r["value"] for r in rows if "class" not in r and r["crops"] == "none"}
    five = {r["metric"]: r["value"] for r in rows if r["crops"] == "five"}
    targets = run.parts.data.test.targets
    chance = float(np.nanmean(np.nanmean(targets, axis=0)))  # AP of random scores: each class's prevalence
    assert value["map"] > chance + 0.08, (value, chance)  # measured: chance 0.17, mAP 0.32-0.37 over seeds
    assert len([r for r in rows if r["metric"] == "ap"]) == 10 and "ap" not in five  # per class: first mode only
    assert value["per_image_ap_mean"] != value["map"]
    # the loop's headline number for a multi-label run is the same class-wise mAP, not an argmax accuracy
    assert run.summary["test_metric"] == "map"
    assert run.summary["test_accuracy"] == pytest.approx(value["map"], abs=1e-6)
    assert run.history[-1]["train_accuracy"] is None
    classes, scores, saved, images = read_predictions(tmp_path / "run" / "multilabel-test-none.csv")
    np.testing.assert_array_equal(saved, targets)  # difficult entries written empty, read back as NaN
    assert np.isnan(saved).any() and (tmp_path / "pr.png").stat().st_size > 5000
    assert five["map"] > chance + 0.08 and five["map"] != value["map"]
    curve = [r for r in run_evaluation("pr_curve", run) if r["class"] == "mean over classes"]
    assert [r["recall"] for r in curve] == [i / 10 for i in range(11)]
