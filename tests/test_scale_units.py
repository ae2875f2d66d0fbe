"""Scale-out pieces that need no cluster: batch sharding across ranks, the study file's resources,
packing runs on GPUs, the plan of --dry-run, and the flags that do not fit a backend."""
from __future__ import annotations

import pytest
import torch
import yaml

from labelrep.cli import main
from labelrep.data.loader import DeviceLoader, Normalize, shard_slice
from labelrep.errors import UserError
from labelrep.study import load_study
from labelrep.study.backends import Resources, concurrency, gpu_slots, local_jobs, makespan, parse_resources

TINY = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
        "optim": {"batch_size": 64}, "train": {"device": "cpu", "epochs": 1}}


def _loader(n: int, batch: int) -> DeviceLoader:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return DeviceLoader(images, torch.arange(n) % 10, batch, Normalize([0.5] * 3, [0.25] * 3), shuffle=True,
                        drop_last=False, crop_padding=2, flip=True)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_together_see_exactly_the_batches_of_one_process(world):
    n, batch = 23, 8  # the last batch (7) does not split evenly
    one = _loader(n, batch)
    one.set_generator(torch.Generator().manual_seed(11))
    expected = list(one)
    parts = []
    for rank in range(world):
        loader = _loader(n, batch)
        loader.shard(rank, world)
        loader.set_generator(torch.Generator().manual_seed(11))
        parts.append(list(loader))
        assert len(loader) == len(one)
    for i, (x, y, idx) in enumerate(expected):
        assert torch.equal(torch.cat([p[i][0] for p in parts]), x)  # same crops and flips, pixel for pixel
        assert torch.equal(torch.cat([p[i][1] for p in parts]), y)
        assert torch.equal(torch.cat([p[i][2] for p in parts]), idx)
        sizes = [len(p[i][1]) for p in parts]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == one.global_batch(i)
    assert shard_slice(7, 2, 3) == slice(5, 7) and shard_slice(7, 0, 3) == slice(0, 3)


def test_resources_parse_and_refuse():
    assert parse_resources(None) == Resources(1.0, 0.0)
    r = parse_resources({"cpus_per_run": 2, "gpus_per_run": 0.25})
    assert (r.cpus_per_run, r.gpus_per_run, r.threads) == (2.0, 0.25, 2)
    assert parse_resources({"cpus_per_run": 0.5}).threads == 1
    for bad, words in [({"gpus": 1}, "unknown key"), ({"cpus_per_run": 0}, "more than 0"),
                       ({"gpus_per_run": 1.5}, "whole number"), ({"cpus_per_run": "two"}, "number"),
                       ([1], "mapping")]:
        with pytest.raises(UserError, match=words):
            parse_resources(bad)


def test_packing_runs_on_gpus():
    assert gpu_slots(4, 1, 0.25) == [0, 0, 0, 0]
    assert gpu_slots(8, 2, 0.25) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert gpu_slots(6, 2, 0.5) == [0, 0, 1, 1, 0, 0]
    assert gpu_slots(3, 2) == [0, 1, 0]         # no share declared: round-robin, as before
    assert gpu_slots(2, 1) == [None, None]      # one GPU, no share: whatever is visible
    assert gpu_slots(2, 0, 0.25) == [None, None]
    assert concurrency(Resources(1, 0.25), cpus=16, gpus=1) == 4
    assert concurrency(Resources(1, 0.25), cpus=2, gpus=1) == 2
    assert concurrency(Resources(1, 0.5), cpus=8, gpus=0) == 0
    assert concurrency(Resources(2, 0), cpus=5, gpus=0) == 2


def test_makespan_waits_for_parents():
    seconds = {"a": 10.0, "b": 10.0, "c": 5.0, "d": 5.0}
    assert makespan(seconds, {}, list(seconds), 2) == 15.0
    assert makespan(seconds, {"c": ["a"], "d": ["c"]}, list(seconds), 2) == 20.0  # a -> c -> d in a row
    assert makespan(seconds, {}, list(seconds), 1) == 30.0


def _study(tmp_path, **extra):
    file = tmp_path / "scale.yaml"
    data = {"name": "scale", "base": TINY, "seeds": 2, "evaluations": ["accuracy"],
            "axes": {"label": {"onehot": {"label.name": "categorical"},
                               "smooth": {"label": {"name": "smoothed", "options": {"alpha": 0.2}}}}}, **extra}
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def test_dry_run_prints_the_plan_for_each_backend(tmp_path, capsys):
    file = _study(tmp_path, resources={"cpus_per_run": 1})
    assert main(["study", str(file), "--out", str(tmp_path / "out"), "--dry-run", "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "Backend local: 1 CPU per run, 2 runs at once" in text and "wall time" in text
    assert main(["study", str(file), "--out", str(tmp_path / "out"), "--dry-run", "--no-measure",
                 "--backend", "ray"]) == 0
    text = capsys.readouterr().out
    assert "Backend ray: 1 CPU per run" in text and "a Ray instance on this machine" in text
    assert not (tmp_path / "out").exists()
    assert main(["study", str(file), "--out", str(tmp_path / "out"), "--dry-run", "--no-measure", "--jobs", "auto"]) == 0
    jobs = local_jobs(Resources(1.0))
    assert f"{jobs} run{'s' if jobs != 1 else ''} at once" in capsys.readouterr().out
    gpu = _study(tmp_path, resources={"cpus_per_run": 1, "gpus_per_run": 0.25})
    assert main(["study", str(gpu), "--dry-run", "--no-measure", "--backend", "ray"]) == 0
    if not torch.cuda.is_available():
        assert "0 runs at once" in capsys.readouterr().out


def test_the_plan_counts_the_step_budget_as_training_does(tmp_path):
    from labelrep.study.runner import estimate

    file = tmp_path / "steps.yaml"
    file.write_text(yaml.safe_dump({"name": "steps", "base": {**TINY, "train": {"device": "cpu", "steps": 30}},
                                    "axes": {"data.fraction": [0.2, 1.0]}, "seeds": [0]}))
    rows = estimate(load_study(file), tmp_path / "out", measure=False)
    # 20 % of the 1,347 training digits is 269 images: 4 steps an epoch at batch 64, so 8 epochs for 30 steps
    assert [(r["steps"], r["epochs"]) for r in rows] == [(30, 8), (30, 2)]


def test_study_flags_that_do_not_fit_the_backend_exit_2(tmp_path, capsys):
    file = _study(tmp_path)
    assert main(["study", str(file), "--address", "127.0.0.1:1", "--dry-run"]) == 2
    assert "--backend ray" in capsys.readouterr().err
    assert main(["study", str(file), "--backend", "ray", "--jobs", "2", "--dry-run"]) == 2
    assert "--jobs is for the local backend" in capsys.readouterr().err
    bad = _study(tmp_path, resources={"cpus": 1})
    assert main(["study", str(bad), "--dry-run"]) == 2
    assert "unknown key(s) cpus in 'resources'" in capsys.readouterr().err
    assert load_study(_study(tmp_path, resources={"gpus_per_run": 0.5})).runs  # resources leave run ids alone
    assert [r.id for r in load_study(_study(tmp_path, resources={"gpus_per_run": 0.5})).runs] == \
        [r.id for r in load_study(_study(tmp_path)).runs]


def test_nproc_refuses_a_bad_count(capsys):
    assert main(["train", "--nproc", "0", "--epochs", "1"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err


def test_watching_target_sources_refuse_several_processes():
    from labelrep.train.distributed import Group, check_supported

    class Watching:
        watches = True

    with pytest.raises(UserError, match="one process only"):
        check_supported(Group(0, 2), Watching(), 64)
    with pytest.raises(UserError, match="smaller than the 4 processes"):
        check_supported(Group(0, 4), type("T", (), {"watches": False})(), 2)
    check_supported(Group(), Watching(), 1)  # one process: anything goes
