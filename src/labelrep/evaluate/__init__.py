"""Evaluation: accuracy, adversarial robustness, data efficiency, feature geometry, calibration, multi-label AP."""
from .accuracy import accuracy, predict_scores
from .registry import EVALUATIONS
from . import calibration as _calibration, features as _features, robustness as _robustness  # noqa: F401  (register)
from . import multilabel as _multilabel  # noqa: F401  (multilabel, pr_curve)


def run_evaluation(name: str, run, **options) -> list[dict]:
    """Run a registered evaluation on a loaded run; returns tidy rows.

    Evaluations assume one class per image unless they declare ``handles_multi_label``; a multi-label
    run gets a sentence for the others instead of numbers computed from an argmax.
    """
    if not getattr(EVALUATIONS.get(name), "handles_multi_label", False):
        run.label_space.require_single_label(f"evaluation {name!r}")
    return EVALUATIONS.create(name, run=run, **options)


__all__ = ["EVALUATIONS", "accuracy", "predict_scores", "run_evaluation"]
