"""Labels that learn: online label smoothing and LwAL's adaptive labels (real digits data, tiny
real models), the nearest-label loss of the regressed-label recipe, and exact resumption after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import labelrep
from labelrep import config as config_mod
from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.labels.categorical import CategoricalLabelSpace
from labelrep.labels.learned import LearnedLabelSpace
from labelrep.labels.regression import nearest_label_loss
from labelrep.train import load_run
from labelrep.train.targets_learned import AdaptiveLabels, OnlineSmoothing

TINY = {"data": {"fraction": 0.5}, "model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}},
        "train": {"epochs": 1, "device": "cpu", "eval_every": 1}}
LWAL = {"label": {"name": "lwal", "options": {"dim": 20}}, "target": {"name": "lwal"}}
SRC = Path(labelrep.__file__).parents[1]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def tiny(*layers) -> dict:
    return config_mod.resolve(TINY, *layers)


@pytest.fixture
def steps(monkeypatch):
    """Per step, in order: the class ids the target source got, and the output, target and label
    table the loss saw."""
    seen = []

    def spy_call(cls):
        call = cls.__call__

        def spy(self, x, y, idx):
            self_ref.append(self)
            seen.append({"y": y.clone()})
            return call(self, x, y, idx)
        monkeypatch.setattr(cls, "__call__", spy)

    def spy_loss(cls):
        loss = cls.loss

        def spy(self, output, target):
            seen[-1].update(output=output.detach().clone(), target=target.detach().clone(),
                            table=self.table.detach().clone())
            return loss(self, output, target)
        monkeypatch.setattr(cls, "loss", spy)

    self_ref: list = []
    for cls in (OnlineSmoothing, AdaptiveLabels):
        spy_call(cls)
    for cls in (CategoricalLabelSpace, LearnedLabelSpace):
        spy_loss(cls)
    return seen, self_ref


def test_ols_targets_after_one_epoch_are_the_class_means_of_correct_softmax_outputs(steps, one_torch_thread):
    seen, sources = steps
    run = labelrep.train(tiny({"train": {"epochs": 2}, "target": {"name": "ols", "options": {"alpha": 0.3}}}))
    per_epoch = len(seen) // 2
    first, second = seen[:per_epoch], seen[per_epoch:]
    # By hand: every correct image of epoch 1 adds its softmax to its class's row; rows are means.
    probs = torch.cat([torch.softmax(s["output"].double(), 1) for s in first])
    y = torch.cat([s["y"] for s in first])
    right = probs.argmax(1) == y
    expected = torch.full((10, 10), 0.1, dtype=torch.float64)
    for c in range(10):
        if (right & (y == c)).any():
            expected[c] = probs[right & (y == c)].mean(0)
    assert right.sum() > 50 and (right & (y == 3)).sum() > 2  # a real test: many correct images
    onehot = torch.eye(10)
    for s in first:  # epoch 1 (the authors' zero start): (1 - alpha) hard
        assert torch.equal(s["target"], 0.7 * onehot[s["y"]])
    for s in second:  # epoch 2: (1 - alpha) hard + alpha * class mean
        assert torch.allclose(s["target"].double(), 0.7 * onehot[s["y"]].double() + 0.3 * expected[s["y"]], atol=1e-6)
    assert run.summary["target"] == "ols"


def test_ols_needs_a_categorical_space():
    with pytest.raises(UserError, match="categorical"):
        labelrep.train(tiny({"label": {"name": "random"}, "target": {"name": "ols"}}))


@pytest.mark.parametrize("options", [{}, {"update_every": 2, "warmup_steps": 1, "decay": 0.5}])
def test_lwal_labels_follow_the_centroid_formula(steps, options, one_torch_thread):
    seen, _ = steps
    run = labelrep.train(tiny(LWAL, {"train": {"epochs": 2}, "target": {"options": {**options, "centroids": "previous"}}}))
    every, warmup, decay = options.get("update_every", 1), options.get("warmup_steps", 0), options.get("decay", 1.0)
    assert torch.equal(seen[0]["table"], torch.eye(10, 20))  # the authors' one-hot start
    updates = 0
    for s, (now, after) in enumerate(zip(seen, seen[1:])):
        expected = now["table"].clone()
        if s >= warmup and (s - warmup) % every == 0:
            for c in now["y"].unique():
                centroid = now["output"][now["y"] == c].double().mean(0)
                expected[c] = (decay * centroid + (1 - decay) * now["table"][c].double()).float()
            updates += 1
        assert torch.allclose(after["table"], expected, atol=1e-6), s
        assert torch.equal(after["target"], after["table"][after["y"]])  # targets: the current labels
    assert updates >= 4 and not torch.equal(seen[-1]["table"], seen[0]["table"])
    # prediction by the nearest learned label
    x = next(iter(run.parts.loader(run.parts.data.test)))[0]
    with torch.no_grad():
        out = run.model(x)
    assert torch.equal(run.label_space.predict(out), torch.cdist(out, run.label_space.table).argmin(1))


@pytest.mark.parametrize("options", [{}, {"update_every": 2, "warmup_steps": 1, "decay": 0.5}])
def test_lwal_batch_centroids_are_the_labels_of_their_own_step(steps, options, one_torch_thread):
    """``centroids: batch`` (the default, the authors'): the loss sees this batch's centroids, then stored."""
    seen, _ = steps
    labelrep.train(tiny(LWAL, {"target": {"options": options}}))
    every, warmup, decay = options.get("update_every", 1), options.get("warmup_steps", 0), options.get("decay", 1.0)
    assert len(seen) >= 4
    for s, (now, after) in enumerate(zip(seen, seen[1:])):
        labels = now["table"].clone()  # the stored labels before the step
        if s >= warmup and (s - warmup) % every == 0:
            for c in now["y"].unique():
                centroid = now["output"][now["y"] == c].double().mean(0)
                labels[c] = (decay * centroid + (1 - decay) * now["table"][c].double()).float()
        assert torch.allclose(now["target"], labels[now["y"]], atol=1e-6), s
        assert torch.allclose(after["table"], labels, atol=1e-6), s


def test_lwal_ids_name_the_centroid_mode():
    """Runs from before the option computed ``previous`` and keep their ids; the new default has its own."""
    default = config_mod.resolve(TINY, LWAL)
    previous = config_mod.resolve(TINY, LWAL, {"target": {"options": {"centroids": "previous"}}})
    before_the_option = {k: v for k, v in config_mod.identity(default).items() if k != "computed_with"}
    assert config_mod.identity(default)["computed_with"] == {"lwal_centroids": "batch"}
    assert config_mod.identity(previous) == before_the_option
    assert config_mod.config_hash(default) != config_mod.config_hash(previous)
    batch = config_mod.resolve(TINY, LWAL, {"target": {"options": {"centroids": "batch"}}})
    assert "computed_with" not in config_mod.identity(batch)  # the config itself names it


def test_lwal_batch_gradient_flows_through_the_centroids():
    space = create_label_space("lwal", [str(i) for i in range(4)], dim=6, repel=0.0)
    space.head(5)
    source = AdaptiveLabels(centroids="batch")
    source.space = space
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])  # class 3 absent: it keeps its stored label
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(1), requires_grad=True)
    loss = space.loss(z, source.refine(z, space.targets(y), y))
    got, = torch.autograd.grad(loss, z)
    labels = torch.stack([z[y == c].mean(0) for c in range(3)] + [space.table[3]])
    expected, = torch.autograd.grad(F.cross_entropy(-torch.cdist(z, labels), y), z)
    assert torch.allclose(got, expected, atol=1e-5)
    frozen, = torch.autograd.grad(F.cross_entropy(-torch.cdist(z, labels.detach()), y), z)
    assert not torch.allclose(got, frozen, atol=1e-3)  # the centroids' own gradient is there


def test_lwal_batch_centroids_refuse_mixed_images():
    with pytest.raises(UserError, match="mixed images"):
        labelrep.train(tiny(LWAL, {"target": {"options": {"centroids": "batch"}}, "mix": {"name": "mixup"}}))


def test_lwal_loss_is_the_authors_pull_plus_repel():
    space = create_label_space("lwal", [str(i) for i in range(4)], dim=6, repel=10.0)
    space.head(5)
    space.table = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 2])
    pull = F.cross_entropy(-torch.cdist(z, space.table), y)
    unit = F.normalize(z, dim=1)
    repel = (unit @ unit.T * (y[:, None] != y[None]).float()).mean()
    assert torch.allclose(space.loss(z, space.targets(y)), pull + 10 * repel, atol=1e-5)


def test_lwal_labels_are_saved_and_loaded_with_the_run(tmp_path, one_torch_thread):
    run = labelrep.train(tiny(LWAL), out=tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert not torch.equal(loaded.label_space.table, torch.eye(10, 20))
    assert torch.equal(loaded.label_space.table, run.label_space.table)
    from labelrep.scoring import accuracy
    assert accuracy(loaded.model, loaded.label_space, loaded.parts.loader(loaded.parts.data.test)) == \
        run.summary["test_accuracy"]


def test_lwal_target_needs_the_lwal_space():
    with pytest.raises(UserError, match="lwal"):
        labelrep.train(tiny({"target": {"name": "lwal"}}))


CHILD = """
import sys, torch
torch.set_num_threads(1)
import labelrep, json
labelrep.train(json.loads(sys.argv[1]), out=sys.argv[2])
"""


@pytest.mark.parametrize("layers", [{"target": {"name": "ols"}}, LWAL], ids=["ols", "lwal"])
def test_learned_targets_resume_bit_exactly_after_sigkill(tmp_path, layers, one_torch_thread):
    cfg = tiny(layers, {"train": {"epochs": 4}})
    reference = labelrep.train(cfg, out=tmp_path / "whole")
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg), str(out)], env=env)
    try:
        while not (out / "checkpoint.pt").exists() and child.poll() is None:
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert child.returncode == -signal.SIGKILL and done < 4  # killed part-way
    resumed = labelrep.train(cfg, out=out, resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]
    for key, value in reference.model.state_dict().items():  # lwal: the learned labels too
        assert torch.equal(resumed.model.state_dict()[key], value), key
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["targets"]
    again = torch.load(out / "checkpoint.pt", weights_only=True)["targets"]
    assert whole.keys() == again.keys()
    for key in whole:
        assert torch.equal(torch.as_tensor(whole[key]), torch.as_tensor(again[key])), key


def test_nearest_label_loss_is_cross_entropy_over_minus_distances():
    space = create_label_space("random", [str(i) for i in range(10)], context={"image_size": 8}, recipe="paper", aux=1.0,
                               aux_temperature=3.0)
    y = torch.tensor([0, 3, 9, 3])
    out = space.targets(y) + 60 * torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0))
    temperature = 3.0 * space._aux_unit
    d = torch.cdist(out.flatten(1).double(), space.table.flatten(1).double()) ** 2 / 256
    expected = F.cross_entropy(-d / temperature, y)
    got = nearest_label_loss(out, space.targets(y), space.table.flatten(1), temperature)
    assert got > 0.1 and torch.allclose(got.double(), expected, rtol=1e-3)
    huber = F.huber_loss(out, space.targets(y))
    assert torch.allclose(space.loss(out, space.targets(y)), huber + got, rtol=1e-5)


def test_regressed_labels_default_to_the_fast_recipe_and_keep_the_papers_by_name():
    context = {"image_size": 4}
    fast = create_label_space("random", CIFAR10, context=context)
    paper = create_label_space("random", CIFAR10, context=context, recipe="paper")
    tuned = create_label_space("random", CIFAR10, context=context, recipe="paper", aux=0.5)
    assert (fast.recipe, fast.aux, fast.head_norm, fast.standard_loss) == ("fast", 1.0, True, True)
    assert (paper.aux, paper.head_norm, paper.standard_loss, tuned.aux) == (0.0, False, False, 0.5)  # explicit wins
    assert torch.equal(fast.table, paper.table)  # the table stays in its own units
    y = torch.tensor([1, 4])
    out = fast.targets(y) + 30 * torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.isclose(paper.loss(out, paper.targets(y)), F.huber_loss(out, paper.targets(y)))
    # fast: the Huber loss on z-scored values plus the nearest-label cross-entropy
    m, s = float(fast.table.mean()), float(fast.table.std())
    expected = F.huber_loss((out - m) / s, (fast.targets(y) - m) / s) + nearest_label_loss(
        out, fast.targets(y), fast.table.flatten(1), 0.2 * s ** 2)  # the temperature is in z-scored units
    assert torch.isclose(fast.loss(out, fast.targets(y)), expected, rtol=1e-5)
    rescaled = create_label_space("random", CIFAR10, context=context, scale=0.5)  # the same logits at any scale
    assert torch.isclose(rescaled.loss(out * 0.5, rescaled.targets(y)), fast.loss(out, fast.targets(y)), rtol=1e-4)
    # its decoder ends in the table's affine: layers start in z-scored units, the output in table units
    head = fast.head(16)
    assert torch.isclose(head[-1](torch.zeros(1)), torch.tensor(m)).all()
    assert fast.describe()["recipe"] == "fast" and paper.describe()["recipe"] == "paper"
    # a space's own default over the recipe's (lowdim's ten entries need a softer temperature); explicit wins
    assert create_label_space("lowdim", CIFAR10, context=context).aux_temperature == 1.0
    assert create_label_space("lowdim", CIFAR10, context=context, aux_temperature=0.3).aux_temperature == 0.3
    with pytest.raises(UserError, match="recipe"):
        create_label_space("random", CIFAR10, context=context, recipe="slow")


def test_budget_rows_put_each_tested_epoch_at_its_optimisation_steps(tmp_path, one_torch_thread):
    from labelrep.evaluate import drawing, run_evaluation

    labelrep.train(tiny({"train": {"steps": 12, "eval_every": 2}}), out=tmp_path / "run")
    run = load_run(tmp_path / "run")
    per_epoch = len(run.parts.loader(run.parts.train, train=True))
    assert per_epoch == 5 and len(run.history) == 3  # 12 steps: epochs of 5, 5 and 2
    rows = run_evaluation("budget", run)
    assert [r["steps"] for r in rows] == [10, 12]  # tested after epoch 2 and the last (cut-short) epoch
    assert [r["value"] for r in rows] == [run.history[1]["test_accuracy"], run.history[2]["test_accuracy"]]
    assert drawing("budget").x == "steps"
