"""Evaluation metrics in pure numpy, one module per task family; every evaluator follows
:class:`~videotk.evaluators.base.Evaluator` (``update``, ``summary``, ``reset``).

This package imports nothing else from videotk, nor Paddle.
"""

from .base import Evaluator, MeanLoss
from .captioning import CaptioningEvaluator
from .detection import (
    DetectionEvaluator,
    detection_average_precision,
    interpolated_average_precision,
)
from .grounding import GroundingEvaluator, temporal_nms, window_candidates
from .kinetics import KineticsEvaluator
from .proposals import (
    ProposalEvaluator,
    area_under_curve,
    average_recall_vs_num_proposals,
    plot_ar_an,
    read_activitynet_results,
    segment_iou,
)
from .youtube8m import (
    YouTube8MEvaluator,
    global_average_precision,
    hit_at_one,
    mean_average_precision,
    multi_hot,
    precision_at_equal_recall_rate,
)

__all__ = [
    "CaptioningEvaluator",
    "DetectionEvaluator",
    "Evaluator",
    "GroundingEvaluator",
    "KineticsEvaluator",
    "MeanLoss",
    "ProposalEvaluator",
    "YouTube8MEvaluator",
    "area_under_curve",
    "average_recall_vs_num_proposals",
    "detection_average_precision",
    "global_average_precision",
    "hit_at_one",
    "interpolated_average_precision",
    "mean_average_precision",
    "multi_hot",
    "plot_ar_an",
    "precision_at_equal_recall_rate",
    "read_activitynet_results",
    "segment_iou",
    "temporal_nms",
    "window_candidates",
]
