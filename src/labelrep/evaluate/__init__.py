"""Evaluation: accuracy, adversarial robustness, data efficiency, feature geometry, calibration."""
from .accuracy import accuracy, predict_scores
from .registry import EVALUATIONS
from . import robustness as _robustness  # noqa: F401  (registers robustness)


def run_evaluation(name: str, run, **options) -> list[dict]:
    """Run a registered evaluation on a loaded run; returns tidy rows."""
    return EVALUATIONS.create(name, run=run, **options)


__all__ = ["EVALUATIONS", "accuracy", "predict_scores", "run_evaluation"]
