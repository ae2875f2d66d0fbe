"""Load a finished (or interrupted) run folder back into Python (the run type lives in ``train.run``)."""
from .train.run import BEST, CHECKPOINT, Run, load_run

__all__ = ["BEST", "CHECKPOINT", "Run", "load_run"]
