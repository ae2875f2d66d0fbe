"""The seams: target sources, mixers on any target, one run type, optimiser groups, step budgets,
and the direction of imports between the stages. Real digits data and real (tiny) models."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import labelrep
from labelrep import config as config_mod
from labelrep.data.mixing import create_mixer
from labelrep.errors import UserError
from labelrep.labels.categorical import CategoricalLabelSpace
from labelrep.train import Hooks, Run, load_run
from labelrep.train.optim import build_optimizer
from labelrep.train.setup import build_run
from labelrep.train.targets import PerImageTargets, TeacherTargets

TINY = {"model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}},
        "train": {"epochs": 1, "device": "cpu", "eval_every": 1}}
SRC = Path(labelrep.__file__).parent


def tiny(*layers) -> dict:
    return config_mod.resolve(TINY, *layers)


@pytest.fixture
def recorded(monkeypatch):
    """Every (target, class ids) pair the categorical loss sees, and each source call's inputs."""
    seen = {"loss": [], "calls": []}
    loss = CategoricalLabelSpace.loss

    def spy(self, output, target):
        seen["loss"].append(target.detach().clone())
        return loss(self, output, target)

    monkeypatch.setattr(CategoricalLabelSpace, "loss", spy)
    return seen


def _spy_source(monkeypatch, cls, seen):
    call = cls.__call__

    def spy(self, x, y, idx):
        out = call(self, x, y, idx)
        seen["calls"].append((x.clone(), y.clone(), idx.clone(), out.clone()))
        return out

    monkeypatch.setattr(cls, "__call__", spy)


def test_per_image_table_from_npy_reaches_the_loss_row_for_row(tmp_path, recorded, monkeypatch, one_torch_thread):
    data = labelrep.load_dataset("digits")
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(10), size=len(data.train)).astype(np.float32)  # soft labels, one per image
    np.save(tmp_path / "soft.npy", rows)
    _spy_source(monkeypatch, PerImageTargets, recorded)
    cfg = tiny({"data": {"fraction": 0.5}, "target": {"name": "per_image", "options": {"file": str(tmp_path / "soft.npy")}}})
    run = labelrep.train(cfg)
    assert len(recorded["loss"]) == len(recorded["calls"]) > 3
    for (x, y, idx, _), target in zip(recorded["calls"], recorded["loss"]):
        full = run.parts.train.index[idx.numpy()]  # positions in the source's full training set
        assert torch.equal(target, torch.as_tensor(rows[full]))
        assert torch.equal(y, torch.as_tensor(data.train.labels[full]))
    # the half the run trains on is a subset: the index is not the identity
    assert not np.array_equal(run.parts.train.index, np.arange(len(run.parts.train)))


def test_per_image_file_must_fit(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros((5, 10), np.float32))
    with pytest.raises(UserError, match="one numeric row per training image"):
        labelrep.train(tiny({"target": {"name": "per_image", "options": {"file": str(tmp_path / "short.npy")}}}))
    np.save(tmp_path / "wide.npy", np.zeros((2000, 7), np.float32))
    with pytest.raises(UserError, match="shape"):
        labelrep.train(tiny({"target": {"name": "per_image", "options": {"file": str(tmp_path / "wide.npy")}}}))
    with pytest.raises(UserError, match="supplies none"):
        labelrep.train(tiny({"target": {"name": "per_image"}}))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    torch.set_num_threads(1)
    labelrep.train(tiny({"train": {"epochs": 2}}), out=out)
    return out


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_teacher_target_is_the_frozen_teachers_softmax_on_the_students_batch(teacher_dir, recorded, monkeypatch,
                                                                               mode, one_torch_thread):
    _spy_source(monkeypatch, TeacherTargets, recorded)
    seen_models = []
    bind = TeacherTargets.bind

    def keep(self, parts, run_dir=None):
        bind(self, parts, run_dir)
        seen_models.append((self.model, _state(self.model)))

    monkeypatch.setattr(TeacherTargets, "bind", keep)
    cfg = tiny({"data": {"crop_padding": 2, "flip": True},  # augmentation on: the crop is per batch
                "target": {"name": "teacher", "options": {"run": str(teacher_dir), "temperature": 2.0, "mode": mode}}})
    labelrep.train(cfg)
    teacher = load_run(teacher_dir)
    (model, before), = seen_models
    x, y, idx, target = recorded["calls"][0]
    assert torch.equal(recorded["loss"][0], target)
    if mode == "eval":
        with torch.no_grad():
            expected = torch.softmax(teacher.model(x) / 2.0, dim=1)
        assert torch.allclose(target, expected, atol=1e-6)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing moved
        assert not torch.allclose(x, recorded["calls"][1][0][: len(x)])  # batches differ: it is per batch
    else:  # the official refinery mode: batch statistics, running averages move, weights do not
        after = model.state_dict()
        moved = [k for k in after if "running_mean" in k and not torch.equal(after[k], before[k])]
        assert moved
        assert all(torch.equal(after[k], before[k]) for k in after if k.endswith("weight"))


def test_teacher_mismatch_of_spaces_is_refused(teacher_dir):
    cfg = tiny({"label": {"name": "random"}, "target": {"name": "teacher", "options": {"run": str(teacher_dir)}}})
    with pytest.raises(UserError, match="same label space"):
        labelrep.train(cfg)
    with pytest.raises(UserError, match="not a run folder"):
        labelrep.train(tiny({"target": {"name": "teacher", "options": {"run": str(teacher_dir.parent / "nope")}}}))


def test_bc_mixes_per_image_targets():
    space = labelrep.create_label_space("categorical", [str(i) for i in range(10)])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    soft = torch.softmax(torch.randn(32, 10, generator=g), 1)  # per-image rows, not class rows
    mixer = create_mixer("bc", space)
    mixer.set_generator(torch.Generator().manual_seed(3))
    _, target = mixer(x, soft, y)
    again = create_mixer("bc", space)
    again.set_generator(torch.Generator().manual_seed(3))
    partner, r = again.draw(y)
    assert torch.allclose(target, r[:, None] * soft + (1 - r[:, None]) * soft[partner])
    mixer = create_mixer("mixup", space, alpha=0.4)
    mixer.set_generator(torch.Generator().manual_seed(3))
    _, target = mixer(x, soft, y)
    lam = (target - soft.flip(0)) / (soft - soft.flip(0))
    assert torch.allclose(lam, lam[0, 0].expand_as(lam), atol=1e-4)  # one lam a batch, on these rows


def test_bc_training_on_per_image_targets(tmp_path, recorded, one_torch_thread):
    data = labelrep.load_dataset("digits")
    rows = np.eye(10, dtype=np.float32)[data.train.labels] * 0.8 + 0.02
    np.save(tmp_path / "rows.npy", rows)
    run = labelrep.train(tiny({"mix": {"name": "bc"}, "label": {"options": {"loss": "kl"}}, "train": {"epochs": 5},
                              "target": {"name": "per_image", "options": {"file": str(tmp_path / "rows.npy")}}}))
    t = recorded["loss"][0]
    # mixed rows: two classes hold 0.8 r + 0.02 and 0.8 (1 - r) + 0.02, the rest 0.02
    assert torch.allclose(t.sum(1), torch.ones(len(t)))
    assert int(((t > 0.021).sum(1) == 2).sum()) > len(t) // 2
    assert run.summary["test_accuracy"] > 0.3


def test_adamw_with_a_head_multiplier(one_torch_thread):
    cfg = tiny({"optim": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01, "head_lr_mult": 10.0,
                          "no_decay_bias_norm": True}, "train": {"epochs": 5}})
    parts = build_run(cfg)
    opt = build_optimizer(parts.model, cfg["optim"])
    assert isinstance(opt, torch.optim.AdamW)
    head = {id(p) for p in parts.model.head.parameters()}
    head_groups = [g for g in opt.param_groups if g["name"].startswith("head")]
    assert {id(p) for g in head_groups for p in g["params"]} == head  # weight and bias
    assert all(g["lr"] == pytest.approx(0.1) for g in head_groups)
    assert all(g["lr"] == pytest.approx(0.01) for g in opt.param_groups if g["name"].startswith("body"))
    no_decay = [p for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]]
    assert no_decay and all(p.ndim == 1 for p in no_decay)
    run = labelrep.train(cfg)
    assert run.summary["test_accuracy"] > 0.8
    assert run.history[0]["lr"] == pytest.approx(0.01)  # the body's rate is the one reported
    with pytest.raises(UserError, match="optim.name"):
        labelrep.train(tiny({"optim": {"name": "lbfgs"}}))


def test_step_budget_trains_exactly_that_many_steps(tmp_path, one_torch_thread):
    steps = []

    class Count(Hooks):
        def on_step(self, epoch, step):
            steps.append((epoch, step))

    run = labelrep.train(tiny({"train": {"steps": 25}, "optim": {"batch_size": 64}}), hooks=[Count()])
    per_epoch = len(run.parts.train) // 64  # 21 on digits
    assert len(steps) == 25 and run.summary["steps"] == 25 and len(run.history) == 2
    assert steps[-1] == (2, 25 - per_epoch - 1)
    assert run.history[-1]["lr"] > 0  # the schedule spans the 25 steps, not two whole epochs


def test_one_run_type_from_train_and_load(tmp_path, one_torch_thread):
    run = labelrep.train(tiny(), out=tmp_path / "r")
    loaded = labelrep.load_run(tmp_path / "r")
    assert type(run) is type(loaded) is Run
    assert run.path == loaded.path and run.summary == loaded.summary and run.history == loaded.history
    x = next(iter(loaded.parts.loader(loaded.parts.data.test)))[0]
    with torch.no_grad():
        assert torch.equal(run.model(x), loaded.model(x))


def test_new_keys_at_their_defaults_keep_run_ids():
    """Run folders made before a key existed keep their identity (and studies their finished runs)."""
    cfg = config_mod.resolve({"data": {"dataset": "digits"}})
    old = {s: dict(v) for s, v in cfg.items() if s != "target"}
    for key in ("name", "head_lr_mult", "no_decay_bias_norm", "betas"):
        old["optim"].pop(key)
    old["train"].pop("steps")
    assert config_mod.config_hash(cfg) == config_mod.config_hash(old)
    cfg["optim"]["name"] = "adamw"
    assert config_mod.config_hash(cfg) != config_mod.config_hash(old)


def test_a_changed_recipe_gives_its_runs_new_ids(monkeypatch):
    """A named recipe's values are part of a regressed run's identity; other runs do not see them."""
    from labelrep.labels import regression

    random_cfg = config_mod.resolve({"data": {"dataset": "digits"}, "label": {"name": "random"}})
    categorical = config_mod.resolve({"data": {"dataset": "digits"}})
    before = config_mod.config_hash(random_cfg), config_mod.config_hash(categorical)
    paper = config_mod.resolve({"data": {"dataset": "digits"}, "label": {"name": "random", "options": {"recipe": "paper"}}})
    paper_before = config_mod.config_hash(paper)
    monkeypatch.setitem(regression.RECIPES, "fast", {**regression.RECIPES["fast"], "aux": 2.0})
    assert config_mod.config_hash(random_cfg) != before[0]
    assert config_mod.config_hash(categorical) == before[1] and config_mod.config_hash(paper) == paper_before
    monkeypatch.setitem(regression.COMMON_OPTIONS, "aux_temperature", 0.5)  # the default temperature too
    assert config_mod.config_hash(paper) != paper_before


# Stages, top to bottom; a module may import its own stage and those below it only.
LAYERS = [{"cli", "__main__"}, {"study"}, {"evaluate"}, {"train", "run"}, {"scoring"},
          {"labels", "models", "data"}, {"config", "registry", "files", "errors"}]


def _stage(module: str) -> int | None:
    head = module.split(".")[0]
    return next((i for i, names in enumerate(LAYERS) if head in names), None)


def test_dependencies_point_down():
    offences = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        own = _stage(".".join(rel.parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(rel.parts[:-1] if rel.name != "__init__" else rel.parts[:-1])
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base) if (base or node.module) else ""
                names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labelrep."):
                names = [node.module.split(".", 1)[1]]
            else:
                continue
            for name in names:
                stage = _stage(name)
                if stage is not None and stage < own:
                    offences.append(f"{rel} imports {name}")
    assert not offences, offences
    assert _stage("train.loop") > _stage("evaluate.features")  # the test knows the direction
