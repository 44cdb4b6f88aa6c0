"""ActivityNet temporal action detection metric: mAP at tIoU 0.5:0.05:0.95 and their average, the
metric of C-TCN.

The definition is that of ActivityNet's ``Evaluation/eval_detection.py``
(``compute_average_precision_detection`` and ``utils.interpolated_prec_rec``):

1. The classes are those of the ground truth; each class is scored on its own, with its ground
   truth and its detections over all videos.
2. The detections are ranked by score, highest first. At each tIoU threshold, a detection is a
   true positive when, among the ground-truth segments of its video and class that have IoU >=
   the threshold with it, one is not yet matched: it takes the one of highest IoU. Otherwise (no
   ground truth there, none close enough, or all taken) it is a false positive. Each ground-truth
   segment is matched at most once per threshold.
3. Precision and recall after each detection; AP is the VOC 2011 interpolated area: precision
   made non-increasing from the right, summed over the steps of recall.
4. A class with ground truth and no detection has AP 0. mAP at a threshold is the mean over the
   classes; ``average_map`` is the mean over the thresholds. All are fractions (C-TCN's 0.31).

Detections of a class absent from the ground truth change no AP and are left out (the reference
refuses their label). Ties are broken as in a stable sort: detections of equal score rank in
the order they were given (video by video, as added), and among ground truths of equal IoU the
one given first is taken; the reference's quicksort leaves both undefined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import MeanLoss
from .proposals import TIOU_THRESHOLDS, _rows, by_score, segment_iou


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 AP of a ranking's ``precision`` and ``recall`` ``[N]`` after each item: precision
    padded with 0 at both ends, made non-increasing from the right, summed over recall steps
    (recall padded with 0 before and 1 after)."""
    precision = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    recall = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def class_average_precision(
    ground_truth: Mapping[str, np.ndarray],
    detections: Sequence[tuple[str, np.ndarray]],
    *,
    tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS,
) -> np.ndarray:
    """AP ``[n_tiou]`` of one class: ``ground_truth`` {video: ``[K, 2]``} and ``detections``
    ``[(video, [P, 3] (start, end, score))]``, in ranking order for ties (module docstring)."""
    thresholds = np.asarray(tiou_thresholds, np.float64).reshape(-1)
    num_truth = sum(len(gt) for gt in ground_truth.values())
    videos = [video for video, rows in detections for _ in range(len(rows))]
    if not videos or num_truth == 0:
        return np.zeros(len(thresholds))
    rows = np.concatenate([rows for _, rows in detections])
    order = by_score(rows[:, 2])
    taken = {video: np.zeros((len(thresholds), len(gt)), bool) for video, gt in ground_truth.items()}
    tp = np.zeros((len(thresholds), len(order)))
    for rank, index in enumerate(order):
        gt = ground_truth.get(videos[index])
        if gt is None or len(gt) == 0:
            continue
        ious = segment_iou(rows[index : index + 1, :2], gt)[0]
        nearest = by_score(ious)
        free = (ious[nearest][None, :] >= thresholds[:, None]) & ~taken[videos[index]][:, nearest]
        matched = free.any(axis=1)
        tp[matched, rank] = 1.0
        taken[videos[index]][matched, nearest[free[matched].argmax(axis=1)]] = True
    tp_sum = np.cumsum(tp, axis=1)
    fp_sum = np.cumsum(1.0 - tp, axis=1)
    recall = tp_sum / num_truth
    precision = tp_sum / (tp_sum + fp_sum)
    return np.array([interpolated_average_precision(precision[t], recall[t]) for t in range(len(thresholds))])


def detection_average_precision(
    ground_truth: Mapping[str, tuple[np.ndarray, np.ndarray]],
    detections: Mapping[str, np.ndarray],
    *,
    tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP of ``detections`` {video: ``[P, 4]`` (start, end, score, label)} against
    ``ground_truth`` {video: (segments ``[K, 2]``, labels ``[K]``)}, same time unit.

    Returns ``(classes [C], ap [n_tiou, C])``: the ground truth's class labels, sorted, and the AP
    of each at each threshold (fractions).
    """
    truth = {video: (_rows(segments, 2, f"video {video!r}: ground truth")[:, :2],
                     np.asarray(labels, np.int64).reshape(-1))
             for video, (segments, labels) in ground_truth.items()}
    found = {video: _rows(rows, 4, f"video {video!r}: detections") for video, rows in detections.items()}
    classes = np.unique(np.concatenate([labels for _, labels in truth.values()] + [np.zeros(0, np.int64)]))
    ap = np.zeros((len(np.asarray(tiou_thresholds).reshape(-1)), len(classes)))
    for column, label in enumerate(classes):
        class_truth = {video: segments[labels == label] for video, (segments, labels) in truth.items()}
        class_found = [(video, rows[rows[:, 3] == label, :3]) for video, rows in found.items()]
        ap[:, column] = class_average_precision(class_truth, class_found, tiou_thresholds=tiou_thresholds)
    return classes, ap


def map_key(threshold: float) -> str:
    """The summary key of the mAP at ``threshold``: ``map@0.5``, ``map@0.55``, ..."""
    return f"map@{float(threshold):.4g}"


class DetectionEvaluator:
    """ActivityNet detection mAP (module docstring) accumulated video by video.

    ``summary()`` gives ``map@0.5``, ``map@0.55``, ..., ``map@0.95`` and ``average_map`` (fractions),
    ``num_videos``, ``num_detections``, ``num_classes`` (classes in the ground truth), and
    ``avg_loss`` when losses were given.
    """

    def __init__(self, *, tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS):
        self.tiou_thresholds = np.asarray(tiou_thresholds, np.float64).reshape(-1)
        self.reset()

    def reset(self) -> None:
        """Forget every video seen."""
        self._truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._detections: dict[str, np.ndarray] = {}
        self._loss = MeanLoss()

    def update(self, video_id: str, gt_segments: np.ndarray, gt_labels: np.ndarray, detections: np.ndarray,
               loss: float | None = None) -> None:
        """Add one video: ``gt_segments`` ``[K, 2]``, ``gt_labels`` ``[K]`` class indices,
        ``detections`` ``[P, 4]`` (start, end, score, label), segments in seconds (or all
        normalised); ``loss``: the video's loss."""
        video_id = str(video_id)
        if video_id in self._truth:
            raise ValueError(f"video {video_id!r} given twice; give each video once, with all its detections")
        segments = _rows(gt_segments, 2, f"video {video_id!r}: ground truth")[:, :2]
        labels = np.asarray(gt_labels).reshape(-1)
        if len(labels) != len(segments):
            raise ValueError(f"video {video_id!r}: {len(segments)} ground-truth segments and {len(labels)} labels")
        rows = _rows(detections, 4, f"video {video_id!r}: detections")[:, :4]
        if np.any(rows[:, 3] != np.round(rows[:, 3])) or np.any(labels != np.round(labels)):
            raise ValueError(f"video {video_id!r}: labels must be class indices (whole numbers)")
        self._truth[video_id] = (segments, labels.astype(np.int64))
        self._detections[video_id] = rows
        if loss is not None:
            self._loss.add(loss, 1)

    def average_precision(self) -> tuple[np.ndarray, np.ndarray]:
        """``(classes [C], ap [n_tiou, C])`` as :func:`detection_average_precision`."""
        return detection_average_precision(self._truth, self._detections, tiou_thresholds=self.tiou_thresholds)

    def summary(self) -> dict:
        """The metrics of every video added (class docstring)."""
        classes, ap = self.average_precision()
        maps = ap.mean(axis=1) if len(classes) else np.zeros(len(self.tiou_thresholds))
        out = {map_key(t): float(m) for t, m in zip(self.tiou_thresholds, maps)}
        out["average_map"] = float(maps.mean()) if len(maps) else 0.0
        out["num_videos"] = len(self._truth)
        out["num_detections"] = int(sum(len(rows) for rows in self._detections.values()))
        out["num_classes"] = len(classes)
        return self._loss.into(out)
