"""Evaluation: accuracy, and (later issues) attacks, data efficiency, feature geometry, calibration."""
from .accuracy import accuracy, predict_scores
from .registry import EVALUATIONS


def run_evaluation(name: str, run, **options) -> list[dict]:
    """Run a registered evaluation on a loaded run; returns tidy rows."""
    return EVALUATIONS.create(name, run=run, **options)


__all__ = ["EVALUATIONS", "accuracy", "predict_scores", "run_evaluation"]
