"""Training targets of the temporal-localization models, in numpy only (no Paddle): BSN's TEM curves,
BMN's boundary-matching map and boundary curves, and C-TCN's anchors with their encoding and decoding.

Segments of BSN and BMN are ``[K, 2]`` (start, end) normalised by the video duration, clipped to
``[0, 1]`` as the 2019 readers did. Snippet ``t`` of ``tscale`` spans ``[t / tscale, (t + 1) / tscale]``.
A video without segments gets all-zero targets (the legacy readers failed on it).

C-TCN boxes are ``[K, 2]`` (xmin, xmax) in rows of the resized input (512 at the seed) with labels
``1..C`` (0 is the background class). Anchors are (centre, width) in the same rows, 7 per position of
every pyramid level. The encoding follows the 2019 ``BoxCoder`` with two deliberate changes:

- after the greedy one-to-one matching, *every* other anchor with IoU >= ``match_iou`` takes its best
  box; the 2019 code skipped that step when exactly one such anchor existed (an artefact of squeezing
  a one-element index array), which left that anchor as background;
- unmatched anchors get zero offsets instead of the offsets to box 0; the loss never reads them.
"""

from __future__ import annotations

import numpy as np

CTCN_VARIANCES = (0.1, 0.2)
CTCN_MATCH_IOU = 0.5
CTCN_ANCHORS_PER_POSITION = 7
_CTCN_SCALE_SPREAD = 0.3
_MIN_MATCH = 1e-6


def _segments(segments, what: str = "segments") -> np.ndarray:
    """``segments`` as float64 ``[K, 2]``; an empty input gives ``[0, 2]``."""
    array = np.asarray(segments, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be [K, 2] (start, end), got shape {list(array.shape)}")
    if (array[:, 1] < array[:, 0]).any():
        bad = int(np.nonzero(array[:, 1] < array[:, 0])[0][0])
        raise ValueError(f"{what}[{bad}] ends before it starts: {array[bad].tolist()}")
    return array


def snippet_bounds(tscale: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) ``[tscale]`` of the snippets: ``t / tscale`` and ``(t + 1) / tscale``."""
    t = np.arange(tscale, dtype=np.float64)
    return t / tscale, (t + 1) / tscale


def ioa(anchor_min: np.ndarray, anchor_max: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
    """Intersection over the anchor's length: anchors ``[A]``, boxes ``[K]`` -> ``[A, K]``."""
    inter = np.minimum(anchor_max[:, None], box_max[None]) - np.maximum(anchor_min[:, None], box_min[None])
    return np.maximum(inter, 0.0) / (anchor_max - anchor_min)[:, None]


def iou(anchor_min: np.ndarray, anchor_max: np.ndarray, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
    """Intersection over union: anchors ``[A]``, boxes ``[K]`` -> ``[A, K]``."""
    inter = np.maximum(np.minimum(anchor_max[:, None], box_max[None])
                       - np.maximum(anchor_min[:, None], box_min[None]), 0.0)
    union = (anchor_max - anchor_min)[:, None] + (box_max - box_min)[None] - inter
    return inter / union


def _best_ioa(tscale: int, region_min: np.ndarray, region_max: np.ndarray) -> np.ndarray:
    """Per snippet, the largest IoA with any region: ``[tscale]`` float32 (zeros without regions)."""
    if region_min.size == 0:
        return np.zeros(tscale, np.float32)
    return ioa(*snippet_bounds(tscale), region_min, region_max).max(axis=1).astype(np.float32)


def _normalised(segments) -> np.ndarray:
    return np.clip(_segments(segments), 0.0, 1.0)


def tem_targets(segments, tscale: int = 100, *, boundary_ratio: float = 0.1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSN TEM targets of one video: (action, start, end), each ``[tscale]`` float32 in ``[0, 1]``.

    ``segments`` ``[K, 2]`` normalised to ``[0, 1]``. Each segment gets a start region and an end region
    of width ``max(1 / tscale, boundary_ratio * length)`` centred on its boundaries; a snippet's target is
    its largest IoA (intersection over the snippet's length) with any segment (action), any start
    region (start) or any end region (end). Note the order: the model's output channels are
    (start, end, action).
    """
    seg = _normalised(segments)
    width = np.maximum(1.0 / tscale, boundary_ratio * (seg[:, 1] - seg[:, 0]))
    action = _best_ioa(tscale, seg[:, 0], seg[:, 1])
    start = _best_ioa(tscale, seg[:, 0] - width / 2, seg[:, 0] + width / 2)
    end = _best_ioa(tscale, seg[:, 1] - width / 2, seg[:, 1] + width / 2)
    return action, start, end


def bm_proposals(tscale: int, dscale: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) ``[dscale, tscale]`` of the boundary-matching map: cell ``[d, s]`` is the proposal
    ``[s / tscale, (s + d + 1) / tscale]`` (not clipped at 1: cells with ``s + d >= tscale`` are outside
    the video and masked by the loss)."""
    d, s = np.meshgrid(np.arange(dscale), np.arange(tscale), indexing="ij")
    return s / tscale, (s + d + 1) / tscale


def bmn_targets(segments, tscale: int = 100, dscale: int = 100
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BMN targets of one video: (gt_iou_map ``[dscale, tscale]``, gt_start ``[tscale]``,
    gt_end ``[tscale]``), float32.

    ``gt_iou_map[d, s]`` is the largest IoU of the proposal ``[s / tscale, (s + d + 1) / tscale]`` with a
    segment. ``gt_start`` and ``gt_end`` are the largest IoA of each snippet with a region of fixed
    width ``3 / tscale`` (three snippets, at any ``tscale``; 0.03 at the seed's 100) centred on a start
    or an end: BMN's readers use this fixed width, not BSN's ``boundary_ratio`` rule. With
    ``dscale < tscale`` the map keeps the same ``[d, s]`` meaning (the 2019 reader's map was only
    right for ``dscale == tscale``).
    """
    seg = _normalised(segments)
    lo, hi = bm_proposals(tscale, dscale)
    if len(seg):
        iou_map = iou(lo.ravel(), hi.ravel(), seg[:, 0], seg[:, 1]).max(axis=1).reshape(dscale, tscale)
    else:
        iou_map = np.zeros((dscale, tscale))
    half = 1.5 / tscale
    start = _best_ioa(tscale, seg[:, 0] - half, seg[:, 0] + half)
    end = _best_ioa(tscale, seg[:, 1] - half, seg[:, 1] + half)
    return iou_map.astype(np.float32), start, end


# --- C-TCN ---------------------------------------------------------------------------------------------

def ctcn_level_sizes(img_size: int = 512, num_levels: int = 8) -> list[int]:
    """Positions per pyramid level, finest first: ``img_size / 4``, halving ``num_levels`` times
    (seed: 128, 64, 32, 16, 8, 4, 2, 1, 255 positions)."""
    if num_levels < 4:
        raise ValueError(f"C-TCN needs num_levels >= 4 (p2..p5), got {num_levels}")
    if img_size % 2 ** (num_levels + 1):
        raise ValueError(f"C-TCN img_size {img_size} must be a multiple of {2 ** (num_levels + 1)} for "
                         f"{num_levels} levels (the coarsest level has one position)")
    return [img_size // 2 ** (level + 2) for level in range(num_levels)]


def _anchor_widths(step: int, img_size: int) -> np.ndarray:
    """The 7 widths of a position at ``step``: ``step``, then ``step -+ s`` for ``s = 0.3 * step * p / 3``,
    ``p = 1, 2, 3``. On a level of one position (``step == img_size``, 512 at the seed) ``step + s``,
    wider than the input, becomes ``step - s - 0.3 * step / 6``."""
    widths = [float(step)]
    for p in range(1, 4):
        s = _CTCN_SCALE_SPREAD * step * p / 3
        wider = step - s - _CTCN_SCALE_SPREAD * step / 6 if step == img_size else step + s
        widths += [step - s, wider]
    return np.asarray(widths)


def ctcn_anchors(img_size: int = 512, num_levels: int = 8) -> np.ndarray:
    """C-TCN anchors ``[A, 2]`` (centre, width) in rows, in the model's output order: level by level
    (finest first), position by position, 7 widths each. ``A = 1785`` at the seed.

    Position ``h`` of a level with step ``img_size / size`` is centred on ``(h + 0.5) * step``.
    """
    anchors = []
    for size in ctcn_level_sizes(img_size, num_levels):
        step = img_size // size
        centres = (np.arange(size) + 0.5) * step
        widths = _anchor_widths(step, img_size)
        anchors.append(np.stack(np.broadcast_arrays(centres[:, None], widths[None]), axis=-1).reshape(-1, 2))
    return np.concatenate(anchors)


def _greedy_match(ious: np.ndarray) -> np.ndarray:
    """One anchor per box, best pairs first: ``ious`` ``[A, K]`` -> box index per anchor ``[A]`` (-1: none).

    Ties are broken as the 2019 code did: the first box column holding the maximum, then its first anchor.
    """
    index = np.full(ious.shape[0], -1, dtype=np.int64)
    left = ious.copy()
    for _ in range(min(ious.shape)):
        box = int(np.argmax(left.max(axis=0)))
        anchor = int(np.argmax(left[:, box]))
        if left[anchor, box] < _MIN_MATCH:
            break
        index[anchor] = box
        left[anchor, :] = 0
        left[:, box] = 0
    return index


def ctcn_match(boxes, anchors: np.ndarray, match_iou: float = CTCN_MATCH_IOU) -> np.ndarray:
    """Box index per anchor ``[A]`` (-1: background): greedy one-to-one matching, then every other anchor
    with IoU >= ``match_iou`` takes its best box."""
    boxes = _segments(boxes, "boxes")
    if not len(boxes):
        return np.full(len(anchors), -1, dtype=np.int64)
    lo, hi = anchors[:, 0] - anchors[:, 1] / 2, anchors[:, 0] + anchors[:, 1] / 2
    ious = iou(lo, hi, boxes[:, 0], boxes[:, 1])
    index = _greedy_match(ious)
    extra = (index < 0) & (ious.max(axis=1) >= match_iou)
    index[extra] = ious[extra].argmax(axis=1)
    return index


def encode_ctcn(boxes, anchors: np.ndarray) -> np.ndarray:
    """Offsets ``[A, 2]`` of boxes ``[A, 2]`` (xmin, xmax, one per anchor) from ``anchors`` (centre, width):
    ``((c - c_a) / w_a / 0.1, (w / w_a - 1) / 0.2)``; the width term is a linear ratio, as the seed's."""
    boxes = np.asarray(boxes, dtype=np.float64)
    centre, width = boxes.mean(axis=-1), boxes[..., 1] - boxes[..., 0]
    t_c = (centre - anchors[:, 0]) / anchors[:, 1] / CTCN_VARIANCES[0]
    t_w = (width / anchors[:, 1] - 1.0) / CTCN_VARIANCES[1]
    return np.stack([t_c, t_w], axis=-1)


def ctcn_targets(boxes, labels, *, img_size: int = 512, num_levels: int = 8,
                 match_iou: float = CTCN_MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """C-TCN targets of one video: (loc_targets ``[A, 2]`` float32, cls_targets ``[A]`` int64).

    ``boxes`` ``[K, 2]`` (xmin, xmax) in rows of the ``img_size``-row input, ``labels`` ``[K]`` in
    ``1..C``. ``cls_targets`` is the matched box's label, 0 for background; ``loc_targets`` are the
    matched box's offsets (``encode_ctcn``), 0 for background.
    """
    boxes = _segments(boxes, "boxes")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(boxes):
        raise ValueError(f"C-TCN targets: {len(boxes)} boxes but {len(labels)} labels")
    if (labels < 1).any():
        raise ValueError(f"C-TCN labels must be 1..C (0 is the background), got {sorted(set(labels.tolist()))}")
    anchors = ctcn_anchors(img_size, num_levels)
    index = ctcn_match(boxes, anchors, match_iou)
    matched = index >= 0
    loc = np.zeros((len(anchors), 2))
    cls = np.zeros(len(anchors), dtype=np.int64)
    if matched.any():
        loc[matched] = encode_ctcn(boxes[index[matched]], anchors[matched])
        cls[matched] = labels[index[matched]]
    return loc.astype(np.float32), cls


def decode_ctcn(loc, *, img_size: int = 512, num_levels: int = 8) -> np.ndarray:
    """Segments ``[..., A, 2]`` (xmin, xmax) in rows from offsets ``loc`` ``[..., A, 2]``:
    ``c = t_c * 0.1 * w_a + c_a``, ``w = (t_w * 0.2 + 1) * w_a``, ``[c - w / 2, c + w / 2]`` (not clipped)."""
    loc = np.asarray(loc, dtype=np.float64)
    anchors = ctcn_anchors(img_size, num_levels)
    if loc.shape[-2:] != anchors.shape:
        raise ValueError(f"C-TCN offsets must be [..., {len(anchors)}, 2] for img_size {img_size} and "
                         f"{num_levels} levels, got shape {list(loc.shape)}")
    centre = loc[..., 0] * CTCN_VARIANCES[0] * anchors[:, 1] + anchors[:, 0]
    width = (loc[..., 1] * CTCN_VARIANCES[1] + 1.0) * anchors[:, 1]
    return np.stack([centre - width / 2, centre + width / 2], axis=-1)
