"""One run on two processes (DDP over gloo, launched by torchrun): three seeds reach the accuracy of
three single-process seeds within the seed spread; only rank 0 writes (every file write of every
process is logged by an audit hook); a run killed with SIGKILL resumes (``--nproc 2 --resume``) to
exactly the numbers of the uninterrupted two-process run."""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import labelrep
from labelrep import config as config_mod
from study_helpers import kill_after_epochs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.heavy]

EPOCHS = 8
SEEDS = (0, 1, 2)
CONFIG = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
          "train": {"epochs": EPOCHS, "device": "cpu"}}
CLI_CONFIG = ["--dataset", "digits", "--epochs", str(EPOCHS), "--device", "cpu", "--set", "model.options.widths=[8,16]"]

# Installed in every process (launcher, torchrun agent, ranks) through PYTHONPATH: logs each write,
# rename, removal or folder creation under LABELREP_AUDIT_ROOT, one log per process.
AUDIT = textwrap.dedent("""
    import os, sys
    root = os.environ.get("LABELREP_AUDIT_ROOT")
    if root:
        name = f"rank{os.environ.get('RANK', '-none')}-{os.getpid()}.log"
        log = open(os.path.join(os.environ["LABELREP_AUDIT_LOG"], name), "a", buffering=1)
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def hook(event, args):
            if event == "open":
                if args[2] is not None and args[2] & writing and str(args[0]).startswith(root):
                    log.write(f"open {args[0]}\\n")
            elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
                paths = [str(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
                if any(p.startswith(root) for p in paths):
                    log.write(f"{event} {' '.join(paths)}\\n")

        sys.addaudithook(hook)
""")

SEEDS_SCRIPT = textwrap.dedent("""
    import json, sys
    from labelrep.train import distributed, train
    root, config, seeds = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    group = distributed.init()
    for seed in seeds:  # one process group for the three seeds: torchrun starts in seconds, not minutes
        config["train"]["seed"] = seed
        train(config, out=f"{root}/ddp-{seed}" if group.is_main else None)
    distributed.finish()
""")


def _env(tmp: Path, root: Path) -> dict:
    site = tmp / "audit-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(AUDIT)
    logs = tmp / "audit-logs"
    logs.mkdir(exist_ok=True)
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "LABELREP_AUDIT_ROOT": str(root),
            "LABELREP_AUDIT_LOG": str(logs)}


def _writes(tmp: Path) -> dict[str, list[str]]:
    """Per rank ('0', '1', '-none' for the launcher and torchrun's agent): the logged writes."""
    out: dict[str, list[str]] = {}
    for log in (tmp / "audit-logs").glob("rank*.log"):
        out.setdefault(log.name[4:].rsplit("-", 1)[0], []).extend(log.read_text().splitlines())
    return out


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """Three seeds, each trained by two gloo processes; rank 0 writes ``ddp-<seed>``."""
    tmp = tmp_path_factory.mktemp("ddp")
    root = tmp / "runs"
    script = tmp / "seeds.py"
    script.write_text(SEEDS_SCRIPT)
    cfg = json.dumps(config_mod.resolve(CONFIG))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script), str(root), cfg, json.dumps(SEEDS)], env=_env(tmp, root),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, {seed: _summary(root / f"ddp-{seed}") for seed in SEEDS}


def test_two_processes_reach_the_single_process_accuracy(ddp_runs):
    _, ddp = ddp_runs
    single = [labelrep.train({**CONFIG, "train": {**CONFIG["train"], "seed": s}}).summary["test_accuracy"]
              for s in SEEDS]
    two = [ddp[s]["test_accuracy"] for s in SEEDS]
    assert all(s["train_images"] == 1347 and s["steps"] == EPOCHS * (1347 // 128) for s in ddp.values())
    spread = max(max(single) - min(single), max(two) - min(two), 2 / 450)  # at least two of the 450 test images
    assert abs(statistics.mean(two) - statistics.mean(single)) <= spread, (single, two)
    assert min(two) > 0.8  # it learned: chance is 0.1


def test_only_rank_0_writes(ddp_runs):
    tmp, _ = ddp_runs
    writes = _writes(tmp)
    assert set(writes) >= {"0", "1"}  # the hook ran in both ranks ...
    assert any("summary.json" in w for w in writes["0"])  # ... and sees rank 0's writes
    assert writes["1"] == [] and writes.get("-none", []) == []


def test_sigkill_then_resume_matches_the_uninterrupted_run(ddp_runs, tmp_path):
    _, ddp = ddp_runs
    out = tmp_path / "run"
    env = _env(tmp_path, out)
    command = [sys.executable, "-m", "labelrep", "train", "--nproc", "2", *CLI_CONFIG, "--seed", "0",
               "--out", str(out), "--quiet"]
    proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    # the launcher, torchrun and both ranks
    epochs_at_kill = kill_after_epochs(proc, out, 2, 600, kill=lambda: os.killpg(proc.pid, signal.SIGKILL))
    assert 2 <= epochs_at_kill < EPOCHS and not (out / "summary.json").exists()

    done = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    resumed, uninterrupted = _summary(out), ddp[0]
    for key in ("test_accuracy", "final_train_loss", "steps"):
        assert resumed[key] == uninterrupted[key], key
    writes = _writes(tmp_path)
    assert writes["1"] == [] and writes.get("-none", []) == []  # the CLI path too: rank 0 alone writes
