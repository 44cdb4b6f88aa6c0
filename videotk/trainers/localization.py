"""Test-time post-processing of the temporal-localization models, in numpy only (no Paddle): BMN's
and BSN's proposal candidates, BSN's proposal features, the NMS variants, and ActivityNet's result
format.

Everything follows the seed (PaddleCV/video ``bmn_utils``, ``bsn_utils``, ``ctcn_utils``):

- BMN (:func:`bmn_proposals`) and BSN's PGM (:func:`pgm_proposals`) pair boundary candidates
  (:func:`boundary_candidates`); BSN's PEM reads :func:`bsp_features` and learns
  :func:`candidate_ious`; its score is fused by :func:`bsn_scores`.
- Both proposal models end with the adaptive Gaussian :func:`soft_nms` on normalised proposals.
  The seed's effective values are the ``video_process`` defaults, since the YAML's ``snms_*``
  values were never passed: BMN alpha 0.4, thresholds 0.55 / 0.9 (:data:`BMN_SOFT_NMS`, the
  defaults here); BSN alpha 0.75, thresholds 0.65 / 0.9 (:data:`BSN_SOFT_NMS`).
- C-TCN (:func:`ctcn_detections`): per class a score threshold, :func:`nms`, then
  :func:`gaussian_soft_nms` (the seed's ``configs/ctcn.yaml`` TEST values, which it did pass).
- :func:`to_seconds` and :func:`activitynet_results` make ActivityNet's result file.

Arrays of proposals are ``[P, 3]`` (start, end, score) or wider; times are fractions of the video
unless a function says seconds. Where the seed sorted with pandas or numpy quicksort, equal scores
keep their given order here (a stable sort); the seed's order of ties is undefined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

BMN_SOFT_NMS = {"alpha": 0.4, "low_threshold": 0.55, "high_threshold": 0.9}
BSN_SOFT_NMS = {"alpha": 0.75, "low_threshold": 0.65, "high_threshold": 0.9}
PEAK_THRESHOLD = 0.5
PGM_TOP_K = 1000
PGM_TOP_K_TRAIN = 500


def iou_with(starts: np.ndarray, ends: np.ndarray, start: float, end: float) -> np.ndarray:
    """IoU ``[N]`` of the segments ``starts``/``ends`` ``[N]`` with one segment (the seed's
    ``iou_with_anchors``)."""
    inter = np.maximum(np.minimum(ends, end) - np.maximum(starts, start), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / ((ends - starts) - inter + end - start)


def by_score(scores: np.ndarray) -> np.ndarray:
    """Indices that order ``scores`` from the highest down; equal scores keep their given order."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def boundary_candidates(scores: np.ndarray, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """bool ``[T]``: positions whose ``scores`` ``[T]`` exceed ``threshold`` times the maximum, or
    are a local peak (above both neighbours, outside counting as 0) — the seed's ``boundary_choose``."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    padded = np.concatenate([[0.0], scores, [0.0]])
    peak = (scores > padded[:-2]) & (scores > padded[2:])
    return (scores > threshold * scores.max()) | peak if len(scores) else np.zeros(0, bool)


def _boundaries(start: np.ndarray, end: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end candidates, with the first position always a start and the last an end."""
    starts, ends = boundary_candidates(start, threshold), boundary_candidates(end, threshold)
    starts[0] = ends[-1] = True
    return starts, ends


def bmn_proposals(start: np.ndarray, end: np.ndarray, confidence_map: np.ndarray, *, tscale: int | None = None,
                  dscale: int | None = None, peak_threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """BMN's candidates (the seed's ``gen_props``): ``[P, 3]`` normalised (start, end, score).

    ``start``, ``end`` ``[T]`` boundary probabilities; ``confidence_map`` ``[2, D, T]`` (regression,
    classification) indexed ``[duration, start]``. Every start candidate ``s`` and end candidate
    ``s + d`` (``d < D``, ``s + d < T``) gives ``[s / T, (s + d + 1) / T]`` scored
    ``start[s] * end[s + d] * reg[d, s] * cls[d, s]``; rows go by duration, then start.
    ``tscale`` and ``dscale`` default to the shapes and must match them when given.
    """
    start, end = np.asarray(start, np.float64).reshape(-1), np.asarray(end, np.float64).reshape(-1)
    confidence_map = np.asarray(confidence_map, np.float64)
    tscale = len(start) if tscale is None else tscale
    dscale = confidence_map.shape[1] if dscale is None and confidence_map.ndim == 3 else dscale
    if len(end) != tscale or len(start) != tscale or confidence_map.shape != (2, dscale, tscale):
        raise ValueError(f"BMN outputs: start {list(start.shape)}, end {list(end.shape)} and confidence map "
                         f"{list(confidence_map.shape)}; expected [{tscale}], [{tscale}], [2, {dscale}, {tscale}]")
    starts, ends = _boundaries(start, end, peak_threshold)
    duration, first = np.meshgrid(np.arange(dscale), np.arange(tscale), indexing="ij")
    last = first + duration
    keep = (last < tscale) & starts[first] & ends[np.minimum(last, tscale - 1)]
    d, s = duration[keep], first[keep]
    score = start[s] * end[s + d] * (confidence_map[0] * confidence_map[1])[d, s]
    return np.stack([(1.0 / tscale) * s, (1.0 / tscale) * (s + d + 1), score], axis=1)


def soft_nms(proposals: np.ndarray, *, alpha: float = BMN_SOFT_NMS["alpha"],
             low_threshold: float = BMN_SOFT_NMS["low_threshold"],
             high_threshold: float = BMN_SOFT_NMS["high_threshold"], top_k: int = 100) -> np.ndarray:
    """BSN's and BMN's adaptive Gaussian soft-NMS of normalised ``proposals`` ``[P, 3]`` (start,
    end, score) -> ``[P', 3]``, best first (the seed's ``soft_nms`` and ``video_process``).

    Repeatedly the best remaining proposal is kept, and every other one whose IoU with it exceeds
    ``low_threshold + (high_threshold - low_threshold) * width`` (its normalised width) has its
    score multiplied by ``exp(-IoU**2 / alpha)``. At most ``top_k`` are kept. As in the seed, the
    last remaining proposal is never kept (``P`` proposals give at most ``P - 1``), except that a
    single proposal is kept as it is.

    The defaults are the seed's effective BMN values (:data:`BMN_SOFT_NMS`: 0.4, 0.55, 0.9; the
    YAML's 0.001 / 0.5 / 0.9 were never passed); BSN's are ``**BSN_SOFT_NMS`` (0.75, 0.65, 0.9).
    """
    proposals = _table(proposals, 3, "proposals")
    if len(proposals) <= 1:
        return proposals[:top_k].copy()
    order = by_score(proposals[:, 2])
    starts, ends, scores = (proposals[order, i].copy() for i in range(3))
    alive = np.ones(len(order), bool)
    kept = []
    while alive.sum() > 1 and len(kept) < top_k:
        best = int(np.argmax(np.where(alive, scores, -np.inf)))
        kept.append((starts[best], ends[best], scores[best]))
        alive[best] = False
        ious = iou_with(starts, ends, starts[best], ends[best])
        decayed = alive & (ious > low_threshold + (high_threshold - low_threshold) * (ends[best] - starts[best]))
        scores[decayed] *= np.exp(-np.square(ious[decayed]) / alpha)
    return np.array(kept, np.float64).reshape(-1, 3)


def nms(segments: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS (C-TCN's ``box_nms``): indices ``[K]`` of the kept ``segments`` ``[N, 2]``, best
    ``scores`` ``[N]`` first; a segment is dropped when its IoU with a kept one exceeds ``threshold``."""
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    order = by_score(scores)
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        ious = iou_with(segments[order, 0], segments[order, 1], segments[best, 0], segments[best, 1])
        order = order[ious <= threshold]
    return np.array(keep, np.int64)


def gaussian_soft_nms(segments: np.ndarray, scores: np.ndarray, *, sigma: float = 0.9,
                      threshold: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """C-TCN's Gaussian soft-NMS (``ctcn_utils.soft_nms``, method 2): ``(indices [K], scores [K])``
    in the order kept. Repeatedly the best remaining segment is kept, every other one's score is
    multiplied by ``exp(-IoU**2 / sigma)``, and those that fall below ``threshold`` are dropped (a
    segment is only dropped after a decay, so the best one stays whatever its score)."""
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    current = np.asarray(scores, np.float64).reshape(-1).copy()
    remaining = by_score(current)
    keep, kept_scores = [], []
    while len(remaining):
        best = remaining[int(np.argmax(current[remaining]))]
        keep.append(best)
        kept_scores.append(current[best])
        remaining = remaining[remaining != best]
        ious = iou_with(segments[remaining, 0], segments[remaining, 1], segments[best, 0], segments[best, 1])
        current[remaining] *= np.exp(-np.square(ious) / sigma)
        remaining = remaining[current[remaining] >= threshold]
    return np.array(keep, np.int64), np.array(kept_scores, np.float64)


def ctcn_detections(segments: np.ndarray, class_scores: np.ndarray, *, score_threshold: float = 0.001,
                    nms_threshold: float = 0.8, soft_sigma: float | None = 0.9, soft_threshold: float = 0.004,
                    top_k: int | None = None) -> np.ndarray:
    """C-TCN's detections of one video (the seed's ``BoxCoder.decode`` after decoding): ``[P, 4]``
    (start, end, score, label) from the decoded anchor ``segments`` ``[A, 2]`` (any time unit,
    e.g. fractions of the video) and ``class_scores`` ``[A, C + 1]`` (softmax; column 0 the
    background).

    For each class column ``c >= 1``: keep scores above ``score_threshold``, :func:`nms` at
    ``nms_threshold``, then :func:`gaussian_soft_nms` of ``soft_sigma`` dropping scores below
    ``soft_threshold`` (``soft_sigma=None`` skips it). Label = ``c - 1``. Rows go class by class,
    as the seed; ``top_k`` keeps the best ``top_k`` over all classes, best first (the seed has no
    cap: ``None``). The defaults are the seed's ``configs/ctcn.yaml`` TEST values. A video where no
    class passes has no detection (the seed emitted a dummy ``[0, 1]`` box of the second class).
    """
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    class_scores = np.asarray(class_scores, np.float64)
    if class_scores.ndim != 2 or len(class_scores) != len(segments):
        raise ValueError(f"class scores {list(class_scores.shape)} for {len(segments)} segments; expected "
                         f"[{len(segments)}, num_classes + 1]")
    found = []
    for column in range(1, class_scores.shape[1]):
        passing = np.flatnonzero(class_scores[:, column] > score_threshold)
        kept = passing[nms(segments[passing], class_scores[passing, column], nms_threshold)]
        scores = class_scores[kept, column]
        if soft_sigma is not None:
            order, scores = gaussian_soft_nms(segments[kept], scores, sigma=soft_sigma, threshold=soft_threshold)
            kept = kept[order]
        found.append(np.column_stack([segments[kept], scores, np.full(len(kept), column - 1.0)]))
    rows = np.concatenate(found) if found else np.zeros((0, 4))
    return rows if top_k is None else rows[by_score(rows[:, 2])[:top_k]]


def pgm_proposals(start: np.ndarray, end: np.ndarray, *, peak_threshold: float = PEAK_THRESHOLD,
                  top_k: int | None = PGM_TOP_K, max_duration: int | None = None,
                  seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """BSN's PGM candidates (the seed's ``generate_props``): ``[P, 5]`` normalised (start, end,
    start score, end score, score), best score first.

    Every start candidate ``i`` and end candidate ``j >= i`` (:func:`boundary_candidates`, the first
    position always a start and the last an end; ``j - i < max_duration`` when given, the seed has
    no limit) gives ``[i / T, (j + 1) / T]``, scored ``start[i] * end[j]``. The best ``top_k`` are
    kept (the seed's ``pgm_top_K`` 1000, or ``pgm_top_K_train`` 500 for training videos; ``None``
    keeps all). With fewer than ``top_k`` candidates, random pairs ``i <= j`` fill up to ``top_k``
    as in the seed, drawn here from ``seed`` (the seed's padding was unseeded).
    """
    start, end = np.asarray(start, np.float64).reshape(-1), np.asarray(end, np.float64).reshape(-1)
    if len(start) != len(end) or not len(start):
        raise ValueError(f"start {list(start.shape)} and end {list(end.shape)} must be [T] of one length T > 0")
    tscale = len(start)
    longest = tscale if max_duration is None else max_duration
    starts, ends = _boundaries(start, end, peak_threshold)
    duration, first = np.meshgrid(np.arange(min(longest, tscale)), np.arange(tscale), indexing="ij")
    last = first + duration
    keep = (last < tscale) & starts[first] & ends[np.minimum(last, tscale - 1)]
    i, j = first[keep], last[keep]
    if top_k is not None and len(i) < top_k:
        pad_i, pad_j = _random_pairs(top_k - len(i), tscale, longest, np.random.default_rng(seed))
        i, j = np.concatenate([i, pad_i]), np.concatenate([j, pad_j])
    rows = np.stack([(1.0 / tscale) * i, (1.0 / tscale) * (j + 1), start[i], end[j], start[i] * end[j]], axis=1)
    return rows[by_score(rows[:, 4])[:top_k]]


def _random_pairs(count: int, tscale: int, longest: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random (start, end) positions with ``start <= end < tscale`` and ``end - start < longest``."""
    first = rng.integers(0, tscale, count)
    last = first + (rng.random(count) * np.minimum(tscale - first, longest)).astype(np.int64)
    return first, last


def candidate_ious(proposals: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``[P]``: each proposal's highest IoU with the ground truth ``gt`` ``[K, 2]`` (same unit, BSN
    normalises by the duration in seconds, unclipped) — the seed's ``match_iou``, PEM's target;
    0 without ground truth."""
    return _best_match(proposals, gt, lambda inter, length, gt_length: inter / (length - inter + gt_length))


def candidate_ioas(proposals: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``[P]``: each proposal's highest overlap with a ground truth over its own length (the seed's
    ``match_ioa``); 0 without ground truth."""
    return _best_match(proposals, gt, lambda inter, length, gt_length: inter / length)


def _best_match(proposals, gt, ratio) -> np.ndarray:
    proposals = _table(proposals, 2, "proposals")[:, :2]
    gt = _table(gt, 2, "ground truth")[:, :2]
    if not len(gt) or not len(proposals):
        return np.zeros(len(proposals))
    inter = np.clip(np.minimum(proposals[:, 1:2], gt[None, :, 1]) - np.maximum(proposals[:, :1], gt[None, :, 0]),
                    0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = ratio(inter, proposals[:, 1:2] - proposals[:, :1], gt[None, :, 1] - gt[None, :, 0])
    return values.max(axis=1)


def bsp_features(action: np.ndarray, proposals: np.ndarray, *, num_sample_start: int = 8, num_sample_end: int = 8,
                 num_sample_action: int = 16, num_sample_interpld: int = 3,
                 boundary_ratio: float = 0.25) -> np.ndarray:
    """BSN's Boundary-Sensitive Proposal features (the seed's ``generate_feats``): float64
    ``[P, num_sample_action + num_sample_start + num_sample_end]`` (32), in that order, for
    normalised ``proposals`` ``[P, >=2]`` over the actionness curve ``action`` ``[T]``.

    The curve is a function of time by linear interpolation through its values at the snippet
    centres ``(t + 0.5) / T``, extended by ``int(T / 4 + 10)`` zeros on each side at the same
    spacing (0 beyond them). With ``L = end - start``, the action part covers ``[start, end]``, the
    start part ``[start - r L, start + r L]`` and the end part ``[end - r L, end + r L]`` (``r`` =
    ``boundary_ratio``, the seed's ``bsp_boundary_ratio`` 0.25). A part of ``n`` bins over
    ``[a, b]`` has bin width ``w = (b - a) / (n - 1)``; the curve is read at ``n * m + 1`` points
    ``a - w / 2 + k w / m`` (``m`` = ``num_sample_interpld``), and bin ``i`` is the mean of points
    ``i m`` to ``(i + 1) m``, i.e. ``m + 1`` points shared with the neighbours.
    """
    action = np.asarray(action, np.float64).reshape(-1)
    proposals = _table(proposals, 2, "proposals")
    tscale, gap = len(action), 1.0 / len(action)
    extend = int(tscale / 4 + 10)
    times = np.concatenate([-gap / 2 - (extend - 1 - np.arange(extend)) * gap, gap / 2 + np.arange(tscale) * gap,
                            gap / 2 + gap * tscale + np.arange(extend) * gap])
    values = np.concatenate([np.zeros(extend), action, np.zeros(extend)])
    first, last = proposals[:, 0], proposals[:, 1]
    reach = (last - first) * boundary_ratio

    def part(a: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
        width = (b - a) / (bins - 1)
        points = (a - width / 2)[:, None] + (width / num_sample_interpld)[:, None] * np.arange(
            bins * num_sample_interpld + 1)
        read = np.interp(points, times, values, left=0.0, right=0.0)
        windows = np.arange(bins)[:, None] * num_sample_interpld + np.arange(num_sample_interpld + 1)
        return read[:, windows].mean(axis=2)

    return np.concatenate([part(first, last, num_sample_action), part(first - reach, first + reach, num_sample_start),
                           part(last - reach, last + reach, num_sample_end)], axis=1)


def bsn_scores(candidates: np.ndarray, iou_scores: np.ndarray) -> np.ndarray:
    """BSN's final proposals before soft-NMS: ``[P, 3]`` (start, end, start score * end score *
    PEM's IoU score) from PGM ``candidates`` ``[P, >=4]`` and PEM's ``iou_scores`` ``[P]``."""
    candidates = _table(candidates, 4, "PGM candidates")
    iou_scores = np.asarray(iou_scores, np.float64).reshape(-1)
    return np.column_stack([candidates[:, :2], candidates[:, 2] * candidates[:, 3] * iou_scores])


def to_seconds(proposals: np.ndarray, duration: float) -> np.ndarray:
    """Normalised ``proposals`` ``[P, >=2]`` in seconds: ``[max(0, start) * duration, min(1, end) *
    duration]``, the other columns unchanged (the seed's rule for BMN, BSN and C-TCN)."""
    out = _table(proposals, 2, "proposals").copy()
    out[:, 0] = np.maximum(out[:, 0], 0.0) * duration
    out[:, 1] = np.minimum(out[:, 1], 1.0) * duration
    return out


def result_entries(rows: np.ndarray, *, classes: Sequence[str] | None = None) -> list[dict]:
    """ActivityNet result entries ``[{"segment": [s, e], "score": x[, "label": name]}]`` of one
    video's ``rows`` ``[P, 3]`` (start, end, score; seconds) or ``[P, 4]`` (+ label index into
    ``classes``), best score first, rounded as :func:`activitynet_results`."""
    rows = _table(rows, 3, "result rows")
    if rows.shape[1] >= 4 and classes is None:
        raise ValueError("detections [P, 4] need the class names (classes=...) to label their entries")
    entries = []
    for row in rows:
        entry = {"segment": [float(row[0]), float(row[1])], "score": float(row[2])}
        if rows.shape[1] >= 4:
            label = int(row[3])
            if not 0 <= label < len(classes):
                raise ValueError(f"label index {label} is outside the {len(classes)} class names given")
            entry["label"] = classes[label]
        entries.append(entry)
    return _sorted_rounded(entries)


def activitynet_results(records: Iterable[Mapping], *, external_data: Mapping | None = None) -> dict:
    """ActivityNet's result file as a dict, ``{"version": "VERSION 1.3", "results": {id: [entries]},
    "external_data": {...}}``, from records ``{"id": video, "results": [{"segment": [s, e] (seconds),
    "score": x[, "label": name]}]}`` (see :func:`result_entries`).

    Each video's entries are sorted by score, best first (ties keep their order); segment times are
    rounded to the millisecond and scores to 7 significant digits (float32's precision), so that
    the file reads back to the same metric. ``external_data`` defaults to ``{}``, as the seed wrote.
    """
    results: dict[str, list[dict]] = {}
    for record in records:
        video = str(record["id"])
        if video in results:
            raise ValueError(f"video {video!r} has two records; a result file holds one list per video")
        results[video] = _sorted_rounded(record["results"])
    return {"version": "VERSION 1.3", "results": results, "external_data": dict(external_data or {})}


def _sorted_rounded(entries: Sequence[Mapping]) -> list[dict]:
    order = by_score([float(entry["score"]) for entry in entries]) if len(entries) else []
    out = []
    for index in order:
        entry = dict(entries[index])
        entry["segment"] = [round(float(t), 3) for t in entry["segment"]]
        entry["score"] = float(f"{float(entry['score']):.7g}")
        out.append(entry)
    return out


def _table(array, width: int, what: str) -> np.ndarray:
    """``array`` as float64 ``[N, >=width]`` (an empty input becomes ``[0, width]``)."""
    array = np.asarray(array, np.float64)
    if array.size == 0:
        return np.zeros((0, width), np.float64)
    if array.ndim != 2 or array.shape[1] < width:
        raise ValueError(f"{what} must be [N, {width}] or wider, got {list(array.shape)}")
    return array
