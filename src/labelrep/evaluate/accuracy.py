"""Accuracy over a split (the scoring itself lives below train/ and evaluate/, in labelrep.scoring)."""
from ..scoring import accuracy, predict_scores

__all__ = ["accuracy", "predict_scores"]
