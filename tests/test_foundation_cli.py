"""The command line: a user's mistake is one sentence and exit status 2, with nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from labelrep.cli import main

FAST = ["--quiet", "--epochs", "1", "--set", "model.options.widths=[8,8,8]"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own exits
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["train", "--label", "nope"], "unknown label space 'nope'; known: "),
    (["train", "--model", "resnet7"], "unknown encoder 'resnet7'"),
    (["train", "--dataset", "svhn9"], "unknown dataset 'svhn9'"),
    (["train", "--fraction", "0"], "'data.fraction' must be a number in (0, 1]"),
    (["train", "--fraction", "1.5"], "'data.fraction' must be a number in (0, 1]"),
    (["train", "--set", "optim.lrr=0.1"], "unknown config key 'optim.lrr'"),
    (["train", "--set", "optim.lr=fast"], "'optim.lr' must be a number > 0, got 'fast'"),
    (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "does not exist"),
    (["train", "--epochs", "many"], "invalid int value"),
    (["eval", "/nonexistent/run"], "not a run folder"),
])
def test_user_mistakes_exit_2_with_one_sentence(capsys, tmp_path, argv, message):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, *argv, *(["--out", str(out_dir)] if argv[0] == "train" else []))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()  # nothing half-written


def test_malformed_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [0.1\n")
    code, _, err = run_cli(capsys, "train", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "not valid YAML" in err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("optim: 3\n")
    code, _, err = run_cli(capsys, "train", "--config", str(wrong), "--out", str(tmp_path / "r"))
    assert code == 2 and "must be a mapping" in err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "train", *FAST, "--out", str(blocker / "run"))
    assert code == 2 and "cannot write to output folder" in err


def test_train_config_file_overrides_and_eval(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("label:\n  name: smoothed\n  options: {alpha: 0.2}\noptim:\n  lr: 0.2\n")
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--config", str(cfg), *FAST, "--set", "optim.lr=0.05",
                              "--out", str(out))
    assert code == 0 and "test accuracy" in stdout
    resolved = (out / "config.yaml").read_text()
    assert "lr: 0.05" in resolved and "alpha: 0.2" in resolved and "name: smoothed" in resolved
    summary = json.loads((out / "summary.json").read_text())
    code, stdout, _ = run_cli(capsys, "eval", str(out))
    assert code == 0
    assert json.loads((out / "eval-last.json").read_text())["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_listings(capsys):
    for argv, expected in ((["models", "list"], "resnet110"), (["labels", "list"], "smoothed"),
                           (["data", "info"], "cifar100"), (["data", "info", "--dataset", "digits"], "1347")):
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0 and expected in out


def test_console_script_reports_without_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "labelrep")
    proc = subprocess.run([exe, "train", "--label", "nope", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("labelrep: error:") and "Traceback" not in proc.stderr
