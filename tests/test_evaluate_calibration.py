"""Calibration: ECE against a hand count, temperature fitting, the registered evaluation on a real run."""
from __future__ import annotations

import pytest
import torch

from labelrep.evaluate import run_evaluation
from labelrep.evaluate.calibration import (calibration, expected_calibration_error, fit_temperature, reliability)

from evaluate_helpers import digits_result


def test_ece_matches_the_reliability_bins_and_sees_overconfidence():
    g = torch.Generator().manual_seed(0)
    n, c = 4000, 5
    # overconfident: every prediction at confidence ~0.9, right half of the time
    probs = torch.full((n, c), 0.1 / (c - 1))
    probs[:, 0] = 0.9
    labels = torch.where(torch.rand(n, generator=g) < 0.5, 0, 1)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.9 - (labels == 0).float().mean().item(), abs=1e-4)
    # calibrated: correct with probability equal to the confidence
    conf = 0.3 + 0.7 * torch.rand(n, generator=g)
    probs = torch.zeros(n, c)
    probs[:, 0] = conf
    probs[:, 1:] = ((1 - conf) / (c - 1))[:, None]
    labels = torch.where(torch.rand(n, generator=g) < conf, 0, 2)
    ece = expected_calibration_error(probs, labels, bins=10)
    assert ece < 0.04
    bins = reliability(probs, labels, bins=10)
    assert sum(b["count"] for b in bins) == n
    assert all(b["low"] < b["confidence"] <= b["high"] for b in bins if b["count"])
    assert abs(bins[-1]["accuracy"] - bins[-1]["confidence"]) < 0.05  # calibrated bar by bar


def test_ece_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(2 * torch.randn(3000, 10, generator=g), 1)
    probs[:5, 0] = 1.0  # confidences on bin edges and at 1 land where torchmetrics puts them
    probs[5:10] = torch.full((10,), 0.1)
    labels = torch.randint(0, 10, (3000,), generator=g)
    for bins in (10, 15):
        ours = expected_calibration_error(probs, labels, bins)
        theirs = float(tm.multiclass_calibration_error(probs, labels, num_classes=10, n_bins=bins, norm="l1"))
        assert ours == pytest.approx(theirs, abs=1e-5)


def test_fitted_temperature_recovers_the_true_one_at_any_score_scale():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(6000, 10, generator=g)
    labels = torch.multinomial(torch.softmax(logits / 2.0, 1), 1, generator=g).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)
    # minus-distances in the hundreds (a regressed space): the fitted T scales with them
    assert fit_temperature(100 * logits, labels) == pytest.approx(200.0, rel=0.1)
    rows, diagrams = calibration(100 * logits[:3000], labels[:3000], 100 * logits[3000:], labels[3000:])
    ece = {r["temperature"]: r["value"] for r in rows if r["metric"] == "ece"}
    assert ece["1"] > 0.3 and ece["fitted"] < 0.05  # raw softmax of huge scores is overconfident
    assert set(diagrams) == {"1", "fitted"}


def test_calibration_evaluation_on_a_trained_run():
    run = digits_result()
    rows = run_evaluation("calibration", run, bins=10)
    by = {(r["metric"], r.get("temperature")): r["value"] for r in rows}
    assert by[("accuracy", None)] > 0.9
    assert by[("temperature", "fitted")] > 0
    assert 0 <= by[("ece", "1")] < 0.5
    assert by[("nll", "fitted")] <= by[("nll", "1")] + 0.05  # fitted on the other half, it barely hurts
    assert all(r.get("fit_on") == "test half" for r in rows)
