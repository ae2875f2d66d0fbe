"""Training: the loop, target sources, optimisers, schedules, checkpoints, the run type."""
from .hooks import Hooks, TrainState
from .loop import RunResult, train
from .run import Run, load_run
from .setup import RunParts, build_run
from .targets import TARGETS, TargetSource

__all__ = ["Hooks", "Run", "RunParts", "RunResult", "TARGETS", "TargetSource", "TrainState", "build_run",
           "load_run", "train"]
