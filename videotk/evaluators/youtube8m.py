"""YouTube-8M video-level metrics: Hit@1, PERR, GAP and mAP, one batch or accumulated over many.

The definitions are those of the evaluation shipped with the YouTube-8M starter code
(google/youtube-8m: ``eval_util.py``, ``average_precision_calculator.py``,
``mean_average_precision_calculator.py``):

- Hit@1: fraction of videos whose highest-scored class is a positive label.
- PERR: for a video with ``m`` positive labels, the fraction of its ``m`` highest-scored classes
  that are positives with a score above 0; a video without positive labels scores 0. Averaged
  over all videos.
- GAP: the top-k (20) predictions of every video are pooled and ranked by score; GAP is the
  average precision of that ranking, ``sum over positives in the pool of precision@rank``
  divided by the number of ALL positive labels, so positives outside every top-k lower it.
- mAP: the same average precision per class over that class's pooled top-k entries, divided by
  the class's number of positive labels, averaged over classes that have positive labels.

Ties are broken deterministically: within a video the lower class index ranks first (as
``numpy.argmax`` does for Hit@1), and in a pooled ranking a negative ranks before a positive of
the same score, so tied scores never raise GAP or mAP and the result does not depend on the
order in which videos arrive.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import MeanLoss


def multi_hot(label_lists: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """Labels ``[N]`` lists of class indices -> multi-hot ``[N, num_classes]`` float32 of 0/1."""
    out = np.zeros((len(label_lists), num_classes), dtype=np.float32)
    for video, classes in enumerate(label_lists):
        classes = np.asarray(classes, dtype=np.int64)
        bad = classes[(classes < 0) | (classes >= num_classes)]
        if bad.size:
            raise ValueError(
                f"video {video}: label {int(bad[0])} is outside [0, {num_classes}); "
                "check num_classes (3862 for YouTube-8M 2018, 4716 for 2017)"
            )
        out[video, classes] = 1.0
    return out


def hit_at_one(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of videos whose top-scored class is positive; predictions, labels ``[N, C]``."""
    scores, positives = _checked(predictions, labels)
    return float(_hits_at_one(scores, positives).mean())


def precision_at_equal_recall_rate(predictions: np.ndarray, labels: np.ndarray) -> float:
    """PERR averaged over videos; predictions, labels ``[N, C]``."""
    scores, positives = _checked(predictions, labels)
    return float(_perr_per_video(scores, positives).mean())


def global_average_precision(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """GAP over the pooled ``top_k`` predictions per video; predictions, labels ``[N, C]``."""
    scores, positives = _checked(predictions, labels)
    _, top_scores, top_hits = _top_k_entries(scores, positives, _checked_top_k(top_k))
    return _pooled_average_precision(top_scores, top_hits, positives.sum())


def mean_average_precision(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """Mean over classes with positives of each class's AP on the pooled ``top_k`` entries; ``[N, C]``."""
    scores, positives = _checked(predictions, labels)
    entries = _top_k_entries(scores, positives, _checked_top_k(top_k))
    return _mean_class_average_precision(*entries, positives.sum(axis=0))


class YouTube8MEvaluator:
    """Hit@1, PERR, GAP, mAP and mean loss accumulated over batches of ``[B, C]`` arrays.

    Memory stays bounded by ``N * top_k`` pooled entries plus ``C`` positive counts; results
    equal those of the one-call functions on all videos at once.
    """

    def __init__(self, top_k: int = 20):
        self.top_k = _checked_top_k(top_k)
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self.num_examples = 0
        self._sum_hit_at_one = 0.0
        self._sum_perr = 0.0
        self._loss = MeanLoss()
        self._class_positives: np.ndarray | None = None
        self._pool: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, predictions: np.ndarray, labels: np.ndarray, loss: float | np.ndarray | None = None) -> dict:
        """Add a batch: predictions ``[B, C]`` scores, labels ``[B, C]`` multi-hot 0/1.

        ``loss`` is the batch's mean loss or its ``[B]`` per-video losses. Returns the batch's
        own ``hit_at_one`` and ``perr`` (and ``loss``).
        """
        scores, positives = _checked(predictions, labels)
        if self._class_positives is None:
            self._class_positives = np.zeros(scores.shape[1], dtype=np.int64)
        elif scores.shape[1] != self._class_positives.size:
            raise ValueError(
                f"batch has {scores.shape[1]} classes but earlier batches had "
                f"{self._class_positives.size}; call reset() between datasets"
            )
        batch = scores.shape[0]
        hits = float(_hits_at_one(scores, positives).sum())
        perr = float(_perr_per_video(scores, positives).sum())
        self.num_examples += batch
        self._sum_hit_at_one += hits
        self._sum_perr += perr
        self._class_positives += positives.sum(axis=0)
        self._pool.append(_top_k_entries(scores, positives, self.top_k))
        result = {"hit_at_one": hits / batch, "perr": perr / batch}
        if loss is not None:
            result["loss"] = float(np.mean(loss))
            self._loss.add(result["loss"], batch)
        return result

    def summary(self) -> dict:
        """``hit_at_one``, ``perr``, ``gap``, ``map``, ``num_examples`` and, given losses, ``avg_loss``."""
        if self.num_examples == 0:
            raise ValueError("no videos were accumulated; call update() before summary()")
        classes, scores, hits = (np.concatenate(parts) for parts in zip(*self._pool))
        result = {
            "hit_at_one": self._sum_hit_at_one / self.num_examples,
            "perr": self._sum_perr / self.num_examples,
            "gap": _pooled_average_precision(scores, hits, self._class_positives.sum()),
            "map": _mean_class_average_precision(classes, scores, hits, self._class_positives),
            "num_examples": self.num_examples,
        }
        return self._loss.into(result)


def _checked_top_k(top_k: int) -> int:
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)


def _checked(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float scores ``[N, C]`` and boolean positives ``[N, C]``."""
    scores = np.asarray(predictions)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"predictions {scores.shape} and labels {labels.shape} must both be [N, C]; "
            "turn label index lists into [N, C] with multi_hot(label_lists, num_classes)"
        )
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"predictions {scores.shape} hold no videos or no classes")
    if np.isnan(scores).any():
        raise ValueError(f"predictions contain NaN (first at video {np.argwhere(np.isnan(scores))[0, 0]})")
    if not ((labels == 0) | (labels == 1)).all():
        raise ValueError("labels must be multi-hot 0/1; found other values")
    return scores, labels.astype(bool)


def _hits_at_one(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the first highest-scored class of each video is positive."""
    return positives[np.arange(scores.shape[0]), scores.argmax(axis=1)]


def _perr_per_video(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """``[N]`` share of each video's ``m`` top classes that are positive with score > 0, m = #positives."""
    counts = positives.sum(axis=1)
    correct = (_top_k_mask(scores, counts) & positives & (scores > 0)).sum(axis=1)
    return np.divide(correct, counts, out=np.zeros(counts.shape), where=counts > 0)


def _top_k_entries(scores: np.ndarray, positives: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each video's ``min(top_k, C)`` best entries, flattened: classes, scores, is-positive ``[N * k]``."""
    k = min(top_k, scores.shape[1])
    mask = _top_k_mask(scores, np.full(scores.shape[0], k))
    return np.nonzero(mask)[1].astype(np.int32), scores[mask], positives[mask]


def _top_k_mask(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``[N, C]`` bool with exactly ``k[i]`` True on row i: its highest scores, ties to lower classes."""
    num_classes = scores.shape[1]
    kth_index = np.minimum(num_classes - k, num_classes - 1)
    kth = np.sort(scores, axis=1)[np.arange(scores.shape[0]), kth_index]
    kth = np.where(k > 0, kth, np.inf)[:, None]
    above = scores > kth
    tied = scores == kth
    needed = k - above.sum(axis=1)
    crowded = np.nonzero(tied.sum(axis=1) > needed)[0]
    tied[crowded] &= np.cumsum(tied[crowded], axis=1) <= needed[crowded, None]
    return above | tied


def _pooled_average_precision(scores: np.ndarray, hits: np.ndarray, num_positives: int) -> float:
    """AP of one ranking of ``[M]`` scores and hits over ``num_positives`` (GAP when pooled)."""
    groups = np.zeros(scores.size, dtype=np.int32)
    return float(_average_precisions(groups, scores, hits, np.array([num_positives]))[0])


def _mean_class_average_precision(
    classes: np.ndarray, scores: np.ndarray, hits: np.ndarray, class_positives: np.ndarray
) -> float:
    """Mean of per-class AP ``[C]`` over classes with positives; NaN when no class has any."""
    has_positives = class_positives > 0
    if not has_positives.any():
        return float("nan")
    return float(_average_precisions(classes, scores, hits, class_positives)[has_positives].mean())


def _average_precisions(
    groups: np.ndarray, scores: np.ndarray, hits: np.ndarray, num_positives: np.ndarray
) -> np.ndarray:
    """``[G]`` non-interpolated AP of each group's ranked entries over its ``num_positives[g]``.

    groups, scores, hits ``[M]``; within a group, higher scores rank first and, at equal score,
    negatives before positives. A group with no positives gets 0.
    """
    order = np.lexsort((hits, -scores, groups))
    groups, hits = groups[order], hits[order]
    starts = np.searchsorted(groups, groups)
    rank = np.arange(1, groups.size + 1) - starts
    found = np.cumsum(hits)
    found_in_group = found - np.concatenate(([0], found))[starts]
    precision_at_hits = found_in_group[hits] / rank[hits]
    sums = np.bincount(groups[hits], weights=precision_at_hits, minlength=num_positives.size)
    return np.divide(sums, num_positives, out=np.zeros(num_positives.shape), where=num_positives > 0)
