"""Training: the loop, schedules, checkpoints."""
from .loop import Hooks, RunResult, train
from .setup import RunParts, build_run

__all__ = ["Hooks", "RunParts", "RunResult", "build_run", "train"]
