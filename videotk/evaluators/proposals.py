"""ActivityNet proposal metric: average recall against the average number of proposals per video
(AR@AN) and the area under that curve (AUC), the metric of BSN and BMN.

The definition is that of ActivityNet's ``Evaluation/eval_proposal.py``
(``average_recall_vs_avg_nr_proposals``), step by step:

1. The videos are those with at least one ground-truth segment; a video with none counts nowhere.
   Every proposal given counts in the total ``N`` below, also those of videos without ground truth.
2. ``ratio = max_avg_proposals * V / N`` (``V`` videos). Each video keeps its ``int(P * ratio)``
   best-scored proposals (at most its ``P``); ``kept`` is their total.
3. The curve has 100 points: ``f_j = j / 100 * (max_avg_proposals * V / kept)``, ``j = 1..100``.
   At point ``j`` a video looks at its first ``min(int(n * f_j), n)`` kept proposals, ``n`` the
   number it kept. A video with no proposals is one column of IoU 0 (``n = 1``).
4. At each tIoU threshold ``t`` a ground-truth segment is recalled at point ``j`` when one of those
   proposals has IoU >= ``t`` with it (no one-to-one matching). Recall ``[n_tiou, 100]`` is the
   number recalled over the number of ground-truth segments, summed over videos.
5. The average recall is the mean over thresholds; AN at point ``j`` is ``f_j * kept / V``, i.e.
   ``1, 2, ..., 100`` for ``max_avg_proposals=100``.
6. AUC = ``100 * trapz(avg_recall, AN) / AN[-1]``, the number ActivityNet prints as a percentage
   (BSN's 66.64, BMN's 67.19). Its maximum is 99, since AN starts at 1, not 0.

AR@k is ``100 * avg_recall`` at the ``k``-th point (the seed's ``100 * mean(recall[:, k - 1])``),
which is AN = k at ``max_avg_proposals=100``. AUC and AR@k are percentages, as the seed reports.

Where the reference leaves things undefined, this module decides: proposals of equal score keep the
order they were given in (a stable sort; the reference's quicksort has no defined order of ties);
with no proposal at all the recall is 0 everywhere and AN is ``j / 100 * max_avg_proposals`` (the
reference divides by zero); with no ground truth at all every number is 0.

The module also reads ActivityNet's result file, shared by the proposal and detection tasks:
``{"version": "VERSION 1.3", "results": {video: [{"segment": [s, e], "score": x[, "label": name]}]},
"external_data": {...}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import IO

import numpy as np

from .base import MeanLoss

TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
NUM_POINTS = 100
AR_AT = (1, 5, 10, 100)


def segment_iou(segments: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Temporal IoU ``[N, M]`` of ``segments`` ``[N, 2]`` with ``targets`` ``[M, 2]`` (start, end):
    the overlap (0 when apart) over the union of the two lengths. Two empty segments give NaN,
    which is below every threshold."""
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    targets = np.asarray(targets, np.float64).reshape(-1, 2)
    left = np.maximum(segments[:, None, 0], targets[None, :, 0])
    right = np.minimum(segments[:, None, 1], targets[None, :, 1])
    inter = np.clip(right - left, 0.0, None)
    union = (targets[None, :, 1] - targets[None, :, 0]) + (segments[:, None, 1] - segments[:, None, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def by_score(scores: np.ndarray) -> np.ndarray:
    """Indices that order ``scores`` from the highest down; equal scores keep their given order."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def average_recall_vs_num_proposals(
    ground_truth: Mapping[str, np.ndarray],
    proposals: Mapping[str, np.ndarray],
    *,
    max_avg_proposals: float | None = 100,
    tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ActivityNet's AR@AN curve (module docstring) of ``proposals`` {video: ``[P, >=3]`` (start,
    end, score)} against ``ground_truth`` {video: ``[K, 2]``}, both in the same unit (seconds).

    Returns ``(proposals_per_video [100], recall [n_tiou, 100], avg_recall [100])``, fractions.
    ``max_avg_proposals=None`` uses the average number of proposals given per video.
    """
    thresholds = np.asarray(tiou_thresholds, np.float64).reshape(-1)
    truth = {video: np.asarray(gt, np.float64).reshape(-1, 2) for video, gt in ground_truth.items()}
    videos = [video for video, gt in truth.items() if len(gt)]
    total = sum(len(p) for p in proposals.values())
    steps = np.arange(1, NUM_POINTS + 1) / 100.0
    if not videos:
        return steps * (max_avg_proposals or 0.0), np.zeros((len(thresholds), NUM_POINTS)), np.zeros(NUM_POINTS)
    if max_avg_proposals is None:
        max_avg_proposals = float(total) / len(videos)
    if total == 0:
        return steps * max_avg_proposals, np.zeros((len(thresholds), NUM_POINTS)), np.zeros(NUM_POINTS)
    ratio = max_avg_proposals * float(len(videos)) / total
    first_hits, kept = [], 0
    for video in videos:
        ious, count = _kept_ious(truth[video], proposals.get(video), ratio)
        kept += count
        first_hits.append((_first_hits(ious, thresholds), ious.shape[1]))
    if kept == 0:
        return steps * max_avg_proposals, np.zeros((len(thresholds), NUM_POINTS)), np.zeros(NUM_POINTS)
    fractions = steps * (max_avg_proposals * float(len(videos)) / kept)
    matches = np.zeros((len(thresholds), NUM_POINTS))
    for first, columns in first_hits:
        looked = np.minimum((columns * fractions).astype(np.int64), columns)
        matches += (first[:, :, None] < looked[None, None, :]).sum(axis=1)
    recall = matches / sum(len(truth[video]) for video in videos)
    return fractions * (float(kept) / len(videos)), recall, recall.mean(axis=0)


def _kept_ious(gt: np.ndarray, proposals: np.ndarray | None, ratio: float) -> tuple[np.ndarray, int]:
    """``(IoU [K, n], n)``: the ground truth against the video's ``n`` kept proposals, best score
    first; a video without proposals keeps none and is one column of zeros."""
    if proposals is None or len(proposals) == 0:
        return np.zeros((len(gt), 1)), 0
    proposals = _rows(proposals, 3, "proposals")
    ordered = proposals[by_score(proposals[:, 2])]
    count = min(int(len(ordered) * ratio), len(ordered))
    return segment_iou(gt, ordered[:count, :2]), count


def _first_hits(ious: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``[n_tiou, K]``: the column of the first proposal reaching each threshold for each ground
    truth, or the number of columns when none does."""
    hits = ious[None, :, :] >= thresholds[:, None, None]
    return np.where(hits.any(axis=2), hits.argmax(axis=2), ious.shape[1])


def area_under_curve(proposals_per_video: np.ndarray, avg_recall: np.ndarray) -> float:
    """ActivityNet's AUC in percent: ``100 * trapz(avg_recall, AN) / AN[-1]`` (0 for an empty curve)."""
    an = np.asarray(proposals_per_video, np.float64)
    ar = np.asarray(avg_recall, np.float64)
    if len(an) < 2 or an[-1] == 0:
        return 0.0
    area = float(np.sum((an[1:] - an[:-1]) * (ar[1:] + ar[:-1]) / 2.0))
    return 100.0 * area / float(an[-1])


class ProposalEvaluator:
    """AR@AN and AUC of ActivityNet (module docstring) accumulated video by video.

    ``summary()`` gives ``auc``, ``ar@1``, ``ar@5``, ``ar@10``, ``ar@100`` in percent (as the seed
    reports them), ``curve`` ``{"an": [100], "ar": [100]}`` (AR in percent) for plotting,
    ``num_videos``, ``num_proposals``, and ``avg_loss`` when losses were given.
    """

    def __init__(self, *, max_avg_proposals: float | None = 100,
                 tiou_thresholds: Sequence[float] = TIOU_THRESHOLDS):
        self.max_avg_proposals = max_avg_proposals
        self.tiou_thresholds = np.asarray(tiou_thresholds, np.float64).reshape(-1)
        self.reset()

    def reset(self) -> None:
        """Forget every video seen."""
        self._truth: dict[str, np.ndarray] = {}
        self._proposals: dict[str, np.ndarray] = {}
        self._loss = MeanLoss()

    def update(self, video_id: str, gt_segments: np.ndarray, proposals: np.ndarray,
               loss: float | None = None) -> None:
        """Add one video: ``gt_segments`` ``[K, 2]`` and ``proposals`` ``[P, 3]`` (start, end,
        score), both in seconds (or both normalised); ``loss``: the video's loss."""
        video_id = str(video_id)
        if video_id in self._truth:
            raise ValueError(f"video {video_id!r} given twice; give each video once, with all its proposals")
        self._truth[video_id] = _rows(gt_segments, 2, f"video {video_id!r}: ground truth")[:, :2]
        self._proposals[video_id] = _rows(proposals, 3, f"video {video_id!r}: proposals")[:, :3]
        if loss is not None:
            self._loss.add(loss, 1)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(proposals_per_video, recall, avg_recall)`` as :func:`average_recall_vs_num_proposals`."""
        return average_recall_vs_num_proposals(self._truth, self._proposals, max_avg_proposals=self.max_avg_proposals,
                                               tiou_thresholds=self.tiou_thresholds)

    def summary(self) -> dict:
        """The metrics of every video added (class docstring)."""
        an, _, avg_recall = self.curve()
        out = {"auc": area_under_curve(an, avg_recall)}
        for k in AR_AT:
            out[f"ar@{k}"] = 100.0 * float(avg_recall[k - 1])
        out["curve"] = {"an": [float(x) for x in an], "ar": [100.0 * float(x) for x in avg_recall]}
        out["num_videos"] = len(self._truth)
        out["num_proposals"] = int(sum(len(p) for p in self._proposals.values()))
        return self._loss.into(out)


def plot_ar_an(curve: Mapping[str, Sequence[float]], file: str | os.PathLike | IO[bytes], *,
               title: str = "Average recall vs average number of proposals") -> None:
    """Draw the ``curve`` of :meth:`ProposalEvaluator.summary` (``{"an": [...], "ar": [...]}``, AR in
    percent) as an image; the format follows the file name (``.png``, ``.pdf``, ``.svg``)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot_ar_an draws with matplotlib, which is not installed: pip install matplotlib") from error
    an, ar = list(curve["an"]), list(curve["ar"])
    if len(an) != len(ar):
        raise ValueError(f"curve has {len(an)} AN values and {len(ar)} AR values; expected equal counts")
    figure = Figure(figsize=(5, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(an, ar)
    axes.set_xlabel("average number of proposals per video (AN)")
    axes.set_ylabel("average recall (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(file)


def read_activitynet_results(file: str | os.PathLike, *, classes: Sequence[str] | None = None
                             ) -> dict[str, np.ndarray]:
    """The rows of an ActivityNet result file, in file order: {video: ``[P, 3]`` (start, end,
    score)} for proposals, or ``[P, 4]`` (start, end, score, label index into ``classes``) when
    ``classes`` is given (detections; every entry must then carry a known ``label``)."""
    with open(file, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{file}: not JSON ({error})") from error
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):  # the file's content is wrong, not an argument's type
        raise ValueError(  # noqa: TRY004
            f"{file}: no \"results\" object; an ActivityNet result file is "
            "{\"version\", \"results\": {video: [...]}, \"external_data\"}")
    index = {name: i for i, name in enumerate(classes)} if classes is not None else None
    return {str(video): _result_rows(entries, index, f"{file}: video {video!r}") for video, entries in results.items()}


def _result_rows(entries: list, index: dict[str, int] | None, where: str) -> np.ndarray:
    width = 3 if index is None else 4
    rows = np.zeros((len(entries), width), np.float64)
    for i, entry in enumerate(entries):
        try:
            rows[i, :2] = [float(x) for x in entry["segment"]]
            rows[i, 2] = float(entry["score"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}, entry {i}: expected {{\"segment\": [start, end], \"score\": x}}, "
                             f"got {entry!r}") from error
        if index is not None:
            label = entry.get("label")
            if label not in index:
                raise ValueError(f"{where}, entry {i}: label {label!r} is not one of the {len(index)} classes given")
            rows[i, 3] = index[label]
    return rows


def _rows(array: np.ndarray, width: int, what: str) -> np.ndarray:
    """``array`` as float64 ``[N, >=width]`` (an empty input becomes ``[0, width]``)."""
    array = np.asarray(array, np.float64)
    if array.size == 0:
        return np.zeros((0, width), np.float64)
    if array.ndim != 2 or array.shape[1] < width:
        raise ValueError(f"{what} must be [N, {width}], got {list(array.shape)}")
    return array
