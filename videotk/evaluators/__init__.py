"""Evaluation metrics in pure numpy, one module per task family; every evaluator follows
:class:`~videotk.evaluators.base.Evaluator` (``update``, ``summary``, ``reset``).

This package imports nothing else from videotk, nor Paddle.
"""

from .base import Evaluator, MeanLoss
from .kinetics import KineticsEvaluator
from .youtube8m import (
    YouTube8MEvaluator,
    global_average_precision,
    hit_at_one,
    mean_average_precision,
    multi_hot,
    precision_at_equal_recall_rate,
)

__all__ = [
    "Evaluator",
    "KineticsEvaluator",
    "MeanLoss",
    "YouTube8MEvaluator",
    "global_average_precision",
    "hit_at_one",
    "mean_average_precision",
    "multi_hot",
    "precision_at_equal_recall_rate",
]
