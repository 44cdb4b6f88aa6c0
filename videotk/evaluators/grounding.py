"""Temporal sentence grounding metrics: R@n at IoU m, after temporal NMS, as TALL's evaluation.

Each sentence has one ground-truth span and a set of candidate spans with scores: for TALL, every
sliding window of the sentence's movie moved by its regressed offsets (:func:`window_candidates`).
For each IoU threshold ``m`` the candidates go through temporal NMS with overlap threshold
``m - 0.05`` (a candidate is suppressed when its overlap with a picked one is above it); the
sentence is a hit at R@n when one of the first ``n`` picks has IoU >= ``m`` with the ground truth.
Recall is the fraction of hits over all sentences (micro average).

Ties: among equal scores the candidate given last is picked first (TALL sorts ascending with a
stable sort and picks from the end). Where the overlap of two spans is 0 / 0 (two identical empty
spans), it counts as 0 (no suppression). A sentence without candidates is a miss.
"""

from __future__ import annotations

import numpy as np

from .base import MeanLoss

TOP_N = (1, 5, 10)
IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)
NMS_MARGIN = 0.05


def window_candidates(windows: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Candidates ``[S, W, 3]`` (start, end, score) from windows ``[W, 2]`` (start, end) and a model's
    outputs ``[S, W, 3]`` (score, start offset, end offset): each window moved by its offsets."""
    windows, outputs = np.asarray(windows, np.float64), np.asarray(outputs, np.float64)
    starts = windows[None, :, 0] + outputs[..., 1]
    ends = windows[None, :, 1] + outputs[..., 2]
    return np.stack([starts, ends, outputs[..., 0]], axis=-1)


def temporal_nms(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, overlap: float) -> list[int]:
    """Indices of the spans kept by greedy NMS, best first: the best remaining span is picked and every
    remaining span whose overlap with it (intersection over the sum of lengths minus intersection)
    is above ``overlap`` is dropped."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    lengths = ends - starts
    order = np.argsort(np.asarray(scores, np.float64), kind="stable")
    picks = []
    while order.size:
        best, rest = order[-1], order[:-1]
        picks.append(int(best))
        inter = np.maximum(0.0, np.minimum(ends[best], ends[rest]) - np.maximum(starts[best], starts[rest]))
        union = lengths[best] + lengths[rest] - inter
        ratio = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
        order = rest[ratio <= overlap]
    return picks


def temporal_iou(span: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """IoU ``[P]`` of ``span`` ``[2]`` with each of ``spans`` ``[P, 2]`` (0 when both are empty and equal)."""
    inter = np.maximum(0.0, np.minimum(span[1], spans[:, 1]) - np.maximum(span[0], spans[:, 0]))
    hull = np.maximum(span[1], spans[:, 1]) - np.minimum(span[0], spans[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull > 0)


def recall_hits(gt_span: np.ndarray, candidates: np.ndarray, iou: float, top_n=TOP_N) -> dict[int, bool]:
    """Whether the sentence is a hit at R@n, IoU ``iou``, for each ``n`` of ``top_n``: ``gt_span`` ``[2]``,
    ``candidates`` ``[P, 3]`` (start, end, score)."""
    picks = temporal_nms(candidates[:, 0], candidates[:, 1], candidates[:, 2], iou - NMS_MARGIN)
    good = temporal_iou(gt_span, candidates[picks, :2]) >= iou if picks else np.zeros(0, bool)
    return {n: bool(good[:n].any()) for n in top_n}


def metric_key(n: int, iou: float) -> str:
    """The summary key of R@``n`` at IoU ``iou``: ``r@1,iou0.5``."""
    return f"r@{n},iou{iou:g}"


class GroundingEvaluator:
    """R@1, R@5, R@10 at IoU 0.1, 0.3, 0.5, 0.7 over sentences.

    A sentence's candidates may arrive over several updates (windows in batches); they are pooled
    in arrival order and scored by :meth:`summary`.
    """

    def __init__(self, *, top_n: tuple[int, ...] = TOP_N, iou_thresholds: tuple[float, ...] = IOU_THRESHOLDS):
        self.top_n, self.iou_thresholds = tuple(top_n), tuple(iou_thresholds)
        self.reset()

    def reset(self) -> None:
        """Forget every sentence seen."""
        self._spans: dict[object, np.ndarray] = {}
        self._candidates: dict[object, list[np.ndarray]] = {}
        self._loss = MeanLoss()

    def update(self, sentence_id, gt_span: np.ndarray, candidates: np.ndarray, loss: float | None = None) -> None:
        """Add candidates of one sentence: ``gt_span`` ``[2]`` (start, end) of its clip, ``candidates``
        ``[P, 3]`` (start, end, score), ``P`` may be 0; ``loss``: a mean loss counted once."""
        span = np.asarray(gt_span, np.float64).reshape(-1)
        found = np.asarray(candidates, np.float64)
        if span.shape != (2,):
            raise ValueError(f"sentence {sentence_id!r}: gt_span must be [2] (start, end), got {list(span.shape)}")
        if found.size == 0:
            found = found.reshape(0, 3)
        if found.ndim != 2 or found.shape[1] != 3:
            raise ValueError(f"sentence {sentence_id!r}: candidates must be [P, 3] (start, end, score), "
                             f"got {list(found.shape)}")
        known = self._spans.setdefault(sentence_id, span)
        if not np.array_equal(known, span):
            raise ValueError(f"sentence {sentence_id!r}: ground truth {span.tolist()} given after {known.tolist()}")
        self._candidates.setdefault(sentence_id, []).append(found)
        if loss is not None:
            self._loss.add(loss, 1)

    def summary(self) -> dict:
        """``r@{n},iou{m}`` for each ``n`` and ``m`` (fractions of sentences, 0 before any), ``num_sentences``
        and ``avg_loss`` when losses were given."""
        hits = {(n, iou): 0 for iou in self.iou_thresholds for n in self.top_n}
        for sentence, span in self._spans.items():
            candidates = np.concatenate(self._candidates[sentence])
            for iou in self.iou_thresholds:
                for n, hit in recall_hits(span, candidates, iou, self.top_n).items():
                    hits[n, iou] += hit
        count = len(self._spans)
        out = {metric_key(n, iou): value / max(count, 1) for (n, iou), value in hits.items()}
        out["num_sentences"] = count
        return self._loss.into(out)
