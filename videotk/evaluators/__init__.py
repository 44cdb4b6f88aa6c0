"""Evaluation metrics in pure numpy: YouTube-8M Hit@1, PERR, GAP and mAP.

This package imports nothing else from videotk, nor Paddle.
"""

from .youtube8m import (
    YouTube8MEvaluator,
    global_average_precision,
    hit_at_one,
    mean_average_precision,
    multi_hot,
    precision_at_equal_recall_rate,
)

__all__ = [
    "YouTube8MEvaluator",
    "global_average_precision",
    "hit_at_one",
    "mean_average_precision",
    "multi_hot",
    "precision_at_equal_recall_rate",
]
