"""Data-efficiency sweeps are studies: the grid on the digits set, resumption, the unbalanced draw."""
from __future__ import annotations

import numpy as np
import pytest

from labelrep.errors import UserError
from labelrep.evaluate.efficiency import efficiency_study
from labelrep.study import parse_study, run_study, write_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sweep_is_a_study_that_trains_the_grid_and_reads_finished_runs_back(tmp_path):
    base = {"data": {"dataset": "digits"}, "optim": {"batch_size": 32},
            "train": {"device": "cpu", "epochs": 4, "seed": 5}}
    study = parse_study(efficiency_study(base, ["categorical"], fractions=[0.05, 0.5], seeds=[0, 1]))
    assert [r.cell for r in study.runs] == [{"label": "categorical", "data.fraction": f, "seed": s}
                                            for f in (0.05, 0.5) for s in (0, 1)]
    assert run_study(study, tmp_path).count("done") == 4
    report = write_report(tmp_path)
    acc = {(r["data.fraction"], r["seed"]): r["value"] for r in report.data.rows if r["evaluation"] == "accuracy"}
    assert np.mean([acc[(0.5, s)] for s in (0, 1)]) > np.mean([acc[(0.05, s)] for s in (0, 1)]) + 0.05
    images = {r["cell"]["data.fraction"]: r["train_images"] for r in report.data.runs}
    assert images[0.5] > 5 * images[0.05]
    assert (tmp_path / "figures" / "sweep-data-fraction.png").stat().st_size > 5000
    # a second call trains nothing: the checkpoints are untouched and the numbers the same
    stamp = (tmp_path / "runs" / study.runs[3].id / "checkpoint.pt").stat().st_mtime_ns
    assert run_study(study, tmp_path).count("done") == 4
    assert (tmp_path / "runs" / study.runs[3].id / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert write_report(tmp_path).data.rows == report.data.rows


def test_unbalanced_draw_and_mistakes():
    base = {"data": {"dataset": "digits"}}
    study = parse_study(efficiency_study(base, ["categorical"], [0.1], [3], balanced=False))
    (run,) = study.runs
    assert run.config["data"]["balanced"] is False and run.config["train"]["seed"] == 3
    from labelrep.data import load_dataset
    from labelrep.train.setup import select_training_images

    data = load_dataset("digits")
    train = select_training_images(data, run.config["data"], 3)[0]
    assert len(train) == round(0.1 * len(data.train))
    counts = np.bincount(train.labels)
    assert counts.max() - counts.min() > 2  # classes unbalanced, as in the paper's 1 % draw
    with pytest.raises(UserError):
        efficiency_study(base, [], [0.1], [0])
