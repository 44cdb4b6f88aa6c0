"""Kinetics classification metrics: top-1 / top-5 accuracy of clips and of videos.

A test video is seen as several views (clips in time x crops in space), each scored on its own.
Clip accuracy counts every view; video accuracy first averages the scores of all views of a video
(the published protocol of TSN, StNet, TSM and Non-local testing) and counts every video once.

A label is in the top ``k`` when fewer than ``k`` classes rank before it; classes rank by score,
and among equal scores the lower class index ranks first (as ``numpy.argmax`` does).
"""

from __future__ import annotations

import numpy as np

from .base import MeanLoss

TOP_K = (1, 5)


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """bool ``[N]``: whether each label ``[N]`` is among the ``k`` best of its scores ``[N, C]``."""
    rows = np.arange(len(labels))
    own = scores[rows, labels][:, None]
    classes = np.arange(scores.shape[1])
    before = (scores > own) | ((scores == own) & (classes < labels[:, None]))
    return before.sum(axis=1) < k


class KineticsEvaluator:
    """Clip- and video-level top-1 / top-5 accumulated over batches of views.

    Memory holds one score sum ``[C]`` per video, not the views.
    """

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self._rows: dict[int, int] = {}
        self._sums = np.zeros((0, self.num_classes), np.float64)
        self._counts = np.zeros(0, np.int64)
        self._labels: list[int] = []
        self._clip_hits = dict.fromkeys(TOP_K, 0)
        self._num_clips = 0
        self._loss = MeanLoss()

    def update(
        self, scores: np.ndarray, labels: np.ndarray, video_index: np.ndarray, loss: float | None = None
    ) -> None:
        """Add a batch of ``N`` views: ``scores`` ``[N, C]`` (probabilities or logits; averaged per
        video as given), ``labels`` ``[N]`` class indices, ``video_index`` ``[N]`` the video each
        view belongs to; ``loss``: the batch's mean loss over its ``N`` views."""
        scores, labels, video_index = self._checked(scores, labels, video_index)
        rows = self._video_rows(video_index, labels)
        for k in TOP_K:
            self._clip_hits[k] += int(top_k_hits(scores, labels, k).sum())
        self._num_clips += len(labels)
        np.add.at(self._sums, rows, scores)
        np.add.at(self._counts, rows, 1)
        if loss is not None:
            self._loss.add(loss, len(labels))

    def video_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(video_index [V], mean scores [V, C], labels [V])`` of the videos seen, in the order
        they first arrived."""
        count = len(self._rows)
        videos = np.fromiter(self._rows, np.int64, count)
        means = self._sums[:count] / self._counts[:count, None]
        return videos, means, np.array(self._labels, np.int64)

    def summary(self) -> dict:
        """``clip_top1``, ``clip_top5``, ``video_top1``, ``video_top5`` (fractions, 0 before any
        batch), ``num_clips``, ``num_videos``, and ``avg_loss`` when losses were given."""
        _, scores, labels = self.video_scores()
        out = {}
        for k in TOP_K:
            out[f"clip_top{k}"] = self._clip_hits[k] / max(self._num_clips, 1)
        for k in TOP_K:
            out[f"video_top{k}"] = float(top_k_hits(scores, labels, k).mean()) if len(labels) else 0.0
        out["num_clips"] = self._num_clips
        out["num_videos"] = len(labels)
        return self._loss.into(out)

    def _checked(self, scores, labels, video_index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores = np.asarray(scores, np.float64)
        labels = np.asarray(labels, np.int64).reshape(-1)
        video_index = np.asarray(video_index, np.int64).reshape(-1)
        if scores.ndim != 2 or scores.shape[1] != self.num_classes:
            raise ValueError(f"scores must be [N, {self.num_classes}], got {list(scores.shape)}")
        if not len(scores) == len(labels) == len(video_index):
            raise ValueError(
                f"{len(scores)} score rows, {len(labels)} labels and {len(video_index)} video indices; "
                f"expected equal counts"
            )
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(
                f"label {int(bad[0])} is outside [0, {self.num_classes}); unlabelled videos (label -1, the test "
                f"split) cannot be scored, and num_classes must be the cache's class count"
            )
        return scores, labels, video_index

    def _video_rows(self, video_index: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Row of each view's video in the per-video arrays, adding rows for new videos; ValueError
        (changing nothing) when views of one video carry different labels."""
        batch: dict[int, int] = {}
        for video, label in zip(video_index.tolist(), labels.tolist()):
            known = self._labels[self._rows[video]] if video in self._rows else batch.get(video, label)
            if known != label:
                raise ValueError(f"video {video}: views labelled {known} and {label}")
            batch[video] = label
        for video, label in batch.items():
            if video not in self._rows:
                self._rows[video] = len(self._rows)
                self._labels.append(label)
        self._grow(len(self._rows))
        return np.array([self._rows[video] for video in video_index.tolist()], np.int64)

    def _grow(self, videos: int) -> None:
        """Make room for ``videos`` rows, doubling the arrays as needed."""
        if videos <= len(self._sums):
            return
        capacity = max(videos, 2 * len(self._sums), 64)
        sums = np.zeros((capacity, self.num_classes), np.float64)
        sums[: len(self._sums)] = self._sums
        counts = np.zeros(capacity, np.int64)
        counts[: len(self._counts)] = self._counts
        self._sums, self._counts = sums, counts
