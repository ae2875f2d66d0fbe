"""Evaluation: accuracy, and (later issues) attacks, data efficiency, feature geometry, calibration."""
from .accuracy import accuracy, predict_scores

__all__ = ["accuracy", "predict_scores"]
