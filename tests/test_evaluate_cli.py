"""The evaluation commands on a real (digits) run folder: they print, write rows and figures, and
turn mistakes into one sentence with exit status 2."""
from __future__ import annotations

import json

import pytest

from labelrep.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["features", str(out), "--train", "--dataset", "digits", "--epochs", "4", "--device", "cpu",
                 "--images", "150", "--no-figure", "--quiet"]) == 0
    return out


def test_features_command_trains_with_snapshots(run_dir, capsys):
    assert (run_dir / "watch" / "features" / "features.npz").is_file()
    rows = json.loads((run_dir / "features.json").read_text())
    assert {r["fraction"] for r in rows} == {0.1, 0.3, 0.5, 0.7, 1.0}


def test_attack_command_writes_rows_and_figure(run_dir, capsys):
    assert main(["attack", str(run_dir), "--protocols", "paper", "--attacks", "fgsm", "--eps", "16",
                 "--max-images", "100"]) == 0
    printed = capsys.readouterr().out
    assert "fgsm" in printed and "16/255" in printed
    rows = json.loads((run_dir / "robustness.json").read_text())
    acc = {r["attack"]: r["value"] for r in rows}
    assert acc["none"] > 0.85 and acc["fgsm"] < acc["none"]
    assert all(r["images"] == 100 for r in rows)
    assert (run_dir / "robustness.png").stat().st_size > 5000


def test_calibrate_command(run_dir, capsys):
    assert main(["calibrate", str(run_dir), "--bins", "10"]) == 0
    assert "fitted" in capsys.readouterr().out
    assert (run_dir / "reliability.png").is_file()
    assert any(r["metric"] == "ece" for r in json.loads((run_dir / "calibration.json").read_text()))


@pytest.mark.parametrize("argv", [
    ["attack", "{run}", "--eps", "-1"],
    ["attack", "{run}", "--eps", "2", "--paper-eps", "0.1"],
    ["attack", "{run}", "--attacks", "cw"],
    ["attack", "{missing}"],
    ["calibrate", "{missing}"],
])
def test_mistakes_are_one_sentence_and_status_2(run_dir, tmp_path, argv, capsys):
    argv = [a.format(run=run_dir, missing=tmp_path / "nope") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("labelrep") and "error:" in err and "Traceback" not in err


def test_efficiency_command_runs_a_study(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["efficiency", "--labels", "categorical", "--dataset", "digits", "--device", "cpu",
                 "--fractions", "0.05", "0.2", "--seeds", "0", "--steps", "12", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "0.05" in printed and "0.2" in printed and "report:" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert [r["cell"]["data.fraction"] for r in plan["runs"]] == [0.05, 0.2]
    steps = [json.loads((out / r["folder"] / "summary.json").read_text())["steps"] for r in plan["runs"]]
    assert steps == [12, 12]  # train.steps: the same optimiser steps at every fraction
    assert (out / "figures" / "sweep-data-fraction.png").is_file() and (out / "results.csv").is_file()
