"""Training with mixers end to end on the digits set: finite, learning, repeatable, resumable."""
from __future__ import annotations

import math

import pytest
import torch

from labelrep.data.mixing import CenteredEncoder
from labelrep.evaluate.accuracy import accuracy
from labelrep.run import load_run
from labelrep.train import train
from labelrep.train.loop import Hooks


def config(mix: str | None, epochs: int = 3, label: str = "categorical", **label_options) -> dict:
    return {"data": {"dataset": "digits"}, "label": {"name": label, "options": label_options},
            "model": {"name": "fastnet", "options": {"widths": [16, 32]}},
            "optim": {"batch_size": 64, "lr": 0.05},
            "train": {"epochs": epochs, "seed": 0, "device": "cpu"}, "mix": {"name": mix}}


def finite(history: list[dict]) -> bool:
    return all(math.isfinite(v) for r in history for v in r.values() if isinstance(v, float))


def test_bc_plus_with_kl_learns_and_reloads_with_centring(tmp_path):
    result = train(config("bc_plus", loss="kl"), out=tmp_path / "run")
    assert finite(result.history)
    assert result.summary["test_accuracy"] > 0.6  # chance is 0.1
    assert isinstance(result.parts.model.encoder, CenteredEncoder)
    loaded = load_run(tmp_path / "run")  # the run folder rebuilds the centring step and its weights
    assert isinstance(loaded.model.encoder, CenteredEncoder)
    assert accuracy(loaded.model, loaded.label_space, loaded.parts.loader(loaded.parts.data.test)) == \
        result.summary["test_accuracy"]


class Interrupt(Exception):
    pass


class StopAfterFirstEpoch(Hooks):
    def on_epoch(self, record: dict) -> None:
        raise Interrupt  # the checkpoint of epoch 1 is written before this hook runs


def test_mixed_runs_repeat_and_resume_exactly(tmp_path):
    full = train(config("bc", epochs=2, loss="kl"), out=tmp_path / "full")
    with pytest.raises(Interrupt):
        train(config("bc", epochs=2, loss="kl"), out=tmp_path / "part", hooks=StopAfterFirstEpoch())
    resumed = train(config("bc", epochs=2, loss="kl"), out=tmp_path / "part", resume=True)
    again = train(config("bc", epochs=2, loss="kl"))
    keys = ("train_loss", "test_accuracy")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in full.history]
    assert [[r[k] for k in keys] for r in again.history] == [[r[k] for k in keys] for r in full.history]
    assert torch.equal(resumed.parts.model.head.weight, full.parts.model.head.weight)


def test_bc_with_a_regressed_label_space():
    """BC mixes the rows of a regressed space (10-d labels, Huber loss) and trains with that space's loss.

    (Its accuracy on this tiny budget stays near chance with or without mixing, so it is not asserted.)
    """
    result = train(config("bc", epochs=3, label="lowdim", recipe="paper"))  # the Huber loss alone
    assert result.parts.label_space.shape == (10,) and finite(result.history)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.7 * losses[0]  # Huber loss to the mixed rows falls


def test_single_label_bc_and_mixup_train():
    for mix in ("bc_single", "mixup", "cutmix"):
        result = train(config(mix, epochs=2))
        assert finite(result.history) and result.summary["test_accuracy"] > 0.3, mix


def test_uncentred_evaluation_scores_the_same_weights_without_the_centring(tmp_path):
    from labelrep.evaluate import run_evaluation
    from labelrep.errors import UserError

    train(config("bc_plus", epochs=1, loss="kl"), out=tmp_path / "plus")
    run = load_run(tmp_path / "plus")
    centred = run.model.encoder
    rows = run_evaluation("uncentred", run)
    assert run.model.encoder is centred  # put back
    run.model.encoder = centred.encoder
    plain = accuracy(run.model, run.label_space, run.parts.loader(run.parts.data.test))
    run.model.encoder = centred
    assert rows == [{"metric": "uncentred_accuracy", "value": plain}]
    assert plain != accuracy(run.model, run.label_space, run.parts.loader(run.parts.data.test))
    train(config(None, epochs=1), out=tmp_path / "standard")
    with pytest.raises(UserError, match="centres its inputs"):
        run_evaluation("uncentred", load_run(tmp_path / "standard"))
