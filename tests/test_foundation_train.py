"""The training loop, label spaces, encoders and run folders, on real tiny data and models."""
from __future__ import annotations

import json

import pytest
import torch

import labelrep
from labelrep import config as config_mod
from labelrep.errors import NonFiniteLossError, UserError
from labelrep.labels.categorical import smoothed_table
from labelrep.train import Hooks
from labelrep.train.checkpoint import load_checkpoint

TINY = {"model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}}, "train": {"epochs": 2}}


def tiny(**sections) -> dict:
    cfg = config_mod.resolve(TINY)
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def test_smoothing_schemes_match_their_formulas():
    t1 = smoothed_table(4, 0.2, scheme=1)
    assert torch.allclose(t1[0], torch.tensor([0.85, 0.05, 0.05, 0.05]))
    assert torch.allclose(t1.sum(1), torch.ones(4))
    t2 = smoothed_table(4, 0.2, scheme=2)
    assert torch.allclose(t2[2], torch.tensor([0.0, 0.0, 0.8, 0.0]))
    space = labelrep.create_label_space("smoothed", list("abcd"), alpha=0.2, scheme=1)
    assert torch.equal(space.targets(torch.tensor([1, 0])), t1[[1, 0]])
    with pytest.raises(UserError, match="scheme"):
        labelrep.create_label_space("smoothed", list("abcd"), scheme=3)


def test_categorical_loss_is_cross_entropy_and_scores_are_logits():
    space = labelrep.create_label_space("categorical", [str(i) for i in range(5)])
    logits = torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    assert torch.allclose(space.loss(logits, space.targets(y)), torch.nn.functional.cross_entropy(logits, y))
    assert torch.equal(space.predict(logits), logits.argmax(1))


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "vgg19_bn", "fastnet"])
def test_encoders_build_for_cifar_and_digit_shapes(name):
    for chans, size in ((3, 32), (1, 8)):
        enc = labelrep.create_encoder(name, in_chans=chans, image_size=size).eval()
        out = enc(torch.zeros(2, chans, size, size))
        assert out.shape == (2, enc.num_features)


def test_resnet_depth_and_shortcuts():
    a = labelrep.create_encoder("resnet20")
    b = labelrep.create_encoder("resnet20", shortcut="B")
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert sum(isinstance(m, torch.nn.Conv2d) for m in a.modules()) == 19  # + the linear head = 20 layers
    assert 265_000 < n_params(a) < 275_000  # He et al.: 0.27 M parameters
    assert n_params(b) > n_params(a)  # option B adds 1x1 projections
    with pytest.raises(UserError, match="known"):
        labelrep.create_encoder("resnet21")


def test_training_learns_digits():
    result = labelrep.train(tiny(train={"epochs": 4}, optim={"lr": 0.1}))
    assert result.summary["test_accuracy"] > 0.8
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]


def test_same_seed_same_numbers_different_seed_different():
    a = labelrep.train(tiny()).history
    b = labelrep.train(tiny()).history
    c = labelrep.train(tiny(train={"epochs": 2, "seed": 1})).history
    key = lambda h: [(r["train_loss"], r["test_accuracy"]) for r in h]  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)


def _numbers(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


class StopAfterFirstEpoch(Hooks):
    def on_epoch(self, record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # what Ctrl-C does between epochs


def test_resume_reaches_the_same_final_numbers(tmp_path):
    cfg = tiny(train={"epochs": 3, "ema": 0.9})
    full = labelrep.train(cfg, out=tmp_path / "full")
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        labelrep.train(cfg, out=cut, hooks=StopAfterFirstEpoch())
    assert load_checkpoint(cut / "checkpoint.pt")["epoch"] == 1
    assert not (cut / "summary.json").exists()
    with pytest.raises(UserError, match="--resume"):
        labelrep.train(cfg, out=cut)  # a non-empty folder is never overwritten silently
    resumed = labelrep.train(cfg, out=cut, resume=True)
    assert _numbers(resumed.history) == _numbers(full.history)
    lines = (cut / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert resumed.summary["test_accuracy"] == full.summary["test_accuracy"]


class DropoutNet(torch.nn.Module):
    """A small real encoder whose training draws from torch's global generator (dropout)."""

    num_features = 16

    def __init__(self, in_chans: int = 3, image_size: int = 8):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(in_chans, 16, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.5))

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def dropout_encoder(monkeypatch):
    from labelrep.models import ENCODERS

    monkeypatch.setitem(ENCODERS._factories, "test_dropout", DropoutNet)
    monkeypatch.setitem(ENCODERS._descriptions, "test_dropout", "dropout test encoder")
    return "test_dropout"


def test_dropout_runs_resume_with_the_same_draws(tmp_path, dropout_encoder):
    cfg = tiny(model={"name": dropout_encoder, "options": {}}, train={"epochs": 3}, optim={"lr": 0.1})
    full = labelrep.train(cfg, out=tmp_path / "full")
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        labelrep.train(cfg, out=cut, hooks=StopAfterFirstEpoch())
    torch.rand(1000)  # whatever else the process draws in between must not matter
    resumed = labelrep.train(cfg, out=cut, resume=True)
    assert _numbers(resumed.history) == _numbers(full.history)


def test_run_folder_contents_and_weights_only_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = labelrep.train(tiny(data={"val_size": 100}), out=out)
    assert {p.name for p in out.iterdir()} == {"config.yaml", "metrics.jsonl", "summary.json", "checkpoint.pt",
                                               "best.pt"}
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["wall_seconds"] > 0
    assert summary["best_epoch"] in (1, 2) and "test_accuracy_at_best_val" in summary
    assert summary["train_images"] == 1347 - 100
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    loaded = labelrep.load_run(out)
    x, _, _ = next(iter(loaded.parts.loader(loaded.parts.data.test)))
    result.parts.model.eval()
    torch.testing.assert_close(loaded.model(x), result.parts.model(x))
    # the config written is the resolved one: rerunning it gives the same numbers
    again = labelrep.train(config_mod.load_yaml(out / "config.yaml"))
    assert _numbers(again.history) == _numbers(result.history)


def test_eval_every_tests_on_its_epochs_and_the_last_and_changes_no_training_number():
    every = labelrep.train(tiny(train={"epochs": 5}, data={"val_size": 100})).history
    thinned = labelrep.train(tiny(train={"epochs": 5, "eval_every": 2}, data={"val_size": 100}))
    assert [r["epoch"] for r in thinned.history if "test_accuracy" in r] == [2, 4, 5]
    assert [r["epoch"] for r in thinned.history if "val_accuracy" in r] == [2, 4, 5]
    assert [r["train_loss"] for r in thinned.history] == [r["train_loss"] for r in every]
    assert thinned.summary["test_accuracy"] == every[-1]["test_accuracy"]
    assert thinned.summary["best_epoch"] in (2, 4, 5)
    with pytest.raises(UserError, match="eval_every"):
        labelrep.train(tiny(train={"eval_every": 0}))


def test_a_train_result_goes_where_a_loaded_run_goes(tmp_path):
    from labelrep.evaluate.registry import EVALUATIONS

    result = labelrep.train(tiny(train={"epochs": 2, "ema": 0.5}), out=tmp_path / "run")
    assert result.model is not result.parts.model  # the EMA copy is what the run tested
    rows = EVALUATIONS.get("accuracy")(result)
    assert rows[0]["value"] == result.summary["test_accuracy"]
    assert rows == EVALUATIONS.get("accuracy")(labelrep.load_run(tmp_path / "run"))


def test_nan_loss_stops_with_epoch_and_step():
    with pytest.raises(NonFiniteLossError) as info:
        labelrep.train(tiny(optim={"lr": 1e30, "momentum": 0.0}))
    err = info.value
    assert err.epoch == 1 and 0 <= err.step < 10 and "epoch 1, step" in str(err)


@pytest.mark.parametrize("schedule", ["cosine", "step", "onecycle"])
def test_schedules_reach_their_ends(schedule):
    from labelrep.train.schedule import lr_multiplier

    f = lr_multiplier(schedule, 100, warmup_steps=0 if schedule == "onecycle" else 10)
    assert f(0) <= 0.1 + 1e-9 or schedule == "step"
    assert max(f(s) for s in range(100)) == pytest.approx(1.0)
    assert f(99) < 0.05
