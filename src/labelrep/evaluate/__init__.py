"""Evaluation: accuracy, adversarial robustness, data efficiency, feature geometry, calibration."""
from .accuracy import accuracy, predict_scores
from .registry import EVALUATIONS
from . import calibration as _calibration, features as _features, robustness as _robustness  # noqa: F401  (register)
from . import per_class as _per_class, soft_labels as _soft_labels  # noqa: F401  (register)


def run_evaluation(name: str, run, **options) -> list[dict]:
    """Run a registered evaluation on a loaded run; returns tidy rows."""
    return EVALUATIONS.create(name, run=run, **options)


__all__ = ["EVALUATIONS", "accuracy", "predict_scores", "run_evaluation"]
