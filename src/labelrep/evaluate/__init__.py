"""Evaluation: accuracy, adversarial robustness, data efficiency, feature geometry, calibration, multi-label AP."""
from .accuracy import accuracy, predict_scores
from .registry import DRAWINGS, EVALUATIONS, WATCHES, Drawing, drawing, run_after, watch_hooks
from . import calibration as _calibration, features as _features, robustness as _robustness  # noqa: F401  (register)
from . import per_class as _per_class, soft_labels as _soft_labels  # noqa: F401  (register)
from . import multilabel as _multilabel  # noqa: F401  (multilabel, pr_curve)
from . import agreement as _agreement  # noqa: F401  (register)
from . import budget as _budget  # noqa: F401  (register)


def run_evaluation(name: str, run, watch=None, **options) -> list[dict]:
    """Run a registered evaluation's after part on a loaded run; returns tidy rows."""
    return run_after(name, run, options, watch)


__all__ = ["DRAWINGS", "EVALUATIONS", "WATCHES", "Drawing", "accuracy", "drawing", "predict_scores",
           "run_evaluation", "watch_hooks"]
