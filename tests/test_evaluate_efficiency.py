"""Data-efficiency sweeps on the digits set: the grid, resumption, the unbalanced draw, tables."""
from __future__ import annotations

import numpy as np

from labelrep.evaluate.efficiency import (efficiency_table, epochs_for_steps, plot_efficiency, run_sweep,
                                          summarize, sweep_configs)


def test_sweep_trains_the_grid_and_reads_finished_runs_back(tmp_path):
    base = {"data": {"dataset": "digits"}, "train": {"device": "cpu"}}
    rows = run_sweep(base, ["categorical"], fractions=[0.02, 0.5], seeds=[0, 1], out=tmp_path, steps=30)
    assert len(rows) == 4
    images = {(r["fraction"], r["seed"]): r["train_images"] for r in rows}
    assert images[(0.5, 0)] > 5 * images[(0.02, 0)]
    stats = {s["fraction"]: s for s in summarize(rows)}
    assert stats[0.5]["mean"] > stats[0.02]["mean"] + 0.05  # more data, better accuracy
    assert stats[0.5]["seeds"] == 2
    # a second call trains nothing: the checkpoints are untouched and the numbers the same
    stamp = (tmp_path / "categorical-f0.5-s1" / "checkpoint.pt").stat().st_mtime_ns
    again = run_sweep(base, ["categorical"], fractions=[0.02, 0.5], seeds=[0, 1], out=tmp_path, steps=30)
    assert [r["value"] for r in again] == [r["value"] for r in rows]
    assert (tmp_path / "categorical-f0.5-s1" / "checkpoint.pt").stat().st_mtime_ns == stamp
    headers, body = efficiency_table(rows)
    assert headers == ["label", "2 %", "50 %"] and body[0][0] == "categorical" and "(2)" in body[0][2]
    plot_efficiency(rows, tmp_path / "eff.png")
    assert (tmp_path / "eff.png").stat().st_size > 5000


def test_fixed_steps_and_the_unbalanced_draw():
    assert epochs_for_steps(500, 128, 100) == 34  # 3 full batches an epoch
    assert epochs_for_steps(4000, 128, 100) == 4
    assert epochs_for_steps(50, 128, 10) == 10  # smaller than a batch: one step an epoch
    base = {"data": {"dataset": "digits"}}
    (_, bal), = sweep_configs(base, ["categorical"], [0.1], [3], balanced=True, steps=20)
    (name, unbal), = sweep_configs(base, ["categorical"], [0.1], [3], balanced=False, steps=20)
    assert name.endswith("unbalanced") and unbal["data"]["balanced"] is False and unbal["train"]["seed"] == 3
    from labelrep.data import load_dataset
    from labelrep.train.setup import select_training_images

    data = load_dataset("digits")
    counts = np.bincount(select_training_images(data, unbal["data"], 3)[0].labels)
    assert len(select_training_images(data, unbal["data"], 3)[0]) == round(0.1 * len(data.train))
    assert counts.max() - counts.min() > 2  # classes unbalanced, as in the paper's 1 % draw
    assert bal["train"]["epochs"] == epochs_for_steps(len(select_training_images(data, bal["data"], 3)[0]), 128, 20)
