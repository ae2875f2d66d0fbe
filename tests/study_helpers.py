"""Shared by the study tests: a study run in a child process, killed with SIGKILL part-way through a run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_after_epochs(proc: subprocess.Popen, run_dir: Path, epochs: int, timeout: float, kill=None) -> int:
    """Once ``run_dir`` has written ``epochs`` epochs (and not finished), SIGKILL ``proc`` (``kill``: how,
    e.g. its whole process group; default the process itself); returns the epochs written at the kill."""
    deadline, written = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            written = len((run_dir / "metrics.jsonl").read_text().splitlines())
        except FileNotFoundError:
            written = 0
        if written >= epochs and not (run_dir / "summary.json").exists():
            (kill or (lambda: proc.send_signal(signal.SIGKILL)))()
            break
        time.sleep(0.005)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    return written


def study_killed_in(run_dir: Path, argv: list[str], epochs: int = 2, timeout: float = 240) -> int:
    """Run ``labelrep ARGV`` until ``run_dir`` has written ``epochs`` epochs (and not finished), then kill
    it with SIGKILL; returns the epochs written at the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic as the in-process runs
    proc = subprocess.Popen([sys.executable, "-c", "from labelrep.cli import run; run()", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return kill_after_epochs(proc, run_dir, epochs, timeout)
