"""Temporal action detection on ActivityNet 1.3 with C-TCN.

The cache is an ``activitynet`` cache of C-TCN's rgb and flow score sequences at their native
length (``[T, 402]``: 201 rgb then 201 flow concepts per row). One sample is a dict of numpy arrays:

===============  ======================  ========================================================
key              dtype, shape            content
===============  ======================  ========================================================
``features``     float32 ``[1, R, C]``   the rows resized to ``R = model.img_size`` (512 in the
                                         seed) along time; ``C`` concepts (402)
``loc_targets``  float32 ``[A, 2]``      the offsets of each anchor's matched segment
``cls_targets``  int64 ``[A]``           its class, 1..num_classes, 0 for background
``index``        int64 ``[]``            the record's index in the cache
===============  ======================  ========================================================

Training crops and resizes as the seed's reader did: an SSD-style random crop (for each minimum
IoU in 0, .1, .3, .5, .7, .9, up to 100 tries of U(0.3, 1) x the length whose IoU with every
segment reaches it; one of the candidates or the whole sequence, at random; segments whose centre
falls outside are dropped, the rest clamped), then a resize to ``R`` rows by an interpolation drawn
from nearest, linear, cubic and area. The seed's ``random_move`` (cutting the segments out and
pasting them back elsewhere) is left out: it is not needed to learn, and it moves features across
the seams of unrelated content. Evaluation resizes with nearest neighbours only. Videos without any
positive anchor are kept (the seed dropped them, which shifts every epoch's count): their loss is
the background terms alone.

Labels: the cache's class ``k`` (0-based, sorted names) is C-TCN's class ``k + 1``; 0 is the
background. Detections are decoded, thresholded, NMS-ed and soft-NMS-ed per class with the
seed's test values (:func:`videotk.trainers.localization.ctcn_detections`), then scored by mAP at
tIoU 0.5:0.05:0.95 as ActivityNet's detection evaluation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
import paddle

from ...formats import Cache, CacheError
from ..sections import EvalSettings
from ..settings import Count, NonNegativeFloat
from .activitynet import SubsetVideos, WithLoss, check_features, normalised
from .base import as_numpy, register_task
from .proposals import ActivityNetTask, ProposalData, in_seconds

INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)
MIN_IOUS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


def _iou_with(crop: tuple[float, float], boxes: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(crop[1], boxes[:, 1]) - np.maximum(crop[0], boxes[:, 0]), 0, None)
    union = (crop[1] - crop[0]) + (boxes[:, 1] - boxes[:, 0]) - inter
    return inter / np.maximum(union, 1e-12)


def random_crop(length: int, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """``(start, stop, boxes, labels)``: an SSD-style crop of rows ``start .. stop - 1`` and the
    segments (row units) that keep their centre inside it, shifted and clamped to it."""
    candidates = [(0, length)]
    if len(boxes):
        for min_iou in MIN_IOUS:
            for _ in range(100):
                size = max(1, int(length * rng.uniform(0.3, 1.0)))
                start = int(rng.integers(0, length - size + 1))
                if np.all(_iou_with((start, start + size), boxes) >= min_iou):
                    candidates.append((start, start + size))
                    break
    start, stop = candidates[int(rng.integers(len(candidates)))]
    centres = boxes.mean(axis=1) if len(boxes) else np.zeros(0)
    inside = (centres >= start) & (centres < stop)
    kept = np.clip(boxes[inside] - start, 0, stop - start)
    return start, stop, kept, labels[inside]


def resize_rows(features: np.ndarray, rows: int, interpolation: int) -> np.ndarray:
    """``features`` ``[T, C]`` resized along time to ``[rows, C]`` (the concept axis unchanged)."""
    if features.shape[0] == 0:
        return np.zeros((rows, features.shape[1]), np.float32)
    return cv2.resize(features, (features.shape[1], rows), interpolation=interpolation).reshape(rows, -1)


class CTCNVideos(SubsetVideos):
    """C-TCN's samples (module docstring) of the records of ``subsets``."""

    def __init__(self, cache: Cache, *, rows: int, concepts: int, anchor_kwargs: dict, **kwargs):
        super().__init__(cache, **kwargs)
        self.rows, self.concepts, self.anchor_kwargs = rows, concepts, anchor_kwargs

    def sample(self, index: int, record: dict, rng: np.random.Generator | None) -> dict:
        from ..targets import ctcn_targets

        features = np.asarray(record["features"], np.float32)
        if features.ndim != 2 or features.shape[1] != self.concepts:
            raise ValueError(f"features of shape {list(features.shape)}, not [T, {self.concepts}]")
        length = features.shape[0]
        boxes = normalised(record["segments"], record["duration"]) * length
        labels = np.asarray(record["labels"], np.int64) + 1
        interpolation = cv2.INTER_NEAREST
        if rng is not None:
            start, stop, boxes, labels = random_crop(length, boxes, labels, rng)
            features, length = features[start:stop], stop - start
            interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
        resized = resize_rows(features, self.rows, interpolation)
        loc, cls = ctcn_targets(boxes * (self.rows / max(length, 1)), labels, **self.anchor_kwargs)
        return {"features": resized[None].astype(np.float32), "loc_targets": loc.astype(np.float32),
                "cls_targets": cls.astype(np.int64), "index": np.array(index, np.int64)}


@dataclass(frozen=True)
class DetectionEval(EvalSettings):
    """The ``eval`` section: C-TCN's test post-processing (the seed's values): a score threshold,
    NMS at ``nms_threshold``, then Gaussian soft-NMS of ``soft_nms_sigma`` dropping scores below
    ``soft_threshold``; ``top_k`` caps the detections per video (0: no cap, as the seed)."""

    score_threshold: NonNegativeFloat = 0.001
    nms_threshold: NonNegativeFloat = 0.8
    soft_nms_sigma: NonNegativeFloat = 0.9
    soft_threshold: NonNegativeFloat = 0.004
    top_k: Count = 0


@register_task
class CTCNTask(ActivityNetTask):
    """C-TCN: input ``features [N, 1, R, C]``; outputs the offsets ``[N, A, 2]`` and class logits
    ``[N, A, num_classes + 1]`` of its ``A`` anchors."""

    name = "ctcn"
    Data = ProposalData
    Eval = DetectionEval

    @property
    def rows(self) -> int:
        return self.config.model.get("img_size", 512)

    @property
    def concepts(self) -> int:
        return self.config.model.get("concept_size", 402)

    @property
    def num_classes(self) -> int:
        return self.config.model.get("num_classes", 200)

    def anchor_kwargs(self) -> dict:
        return {"img_size": self.rows, "num_levels": self.config.model.get("num_levels", 8)}

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        check_features(cache, kind="scores", model=self.config.model.name, feature_dim=self.concepts)
        classes = cache.classes or []
        if len(classes) > self.num_classes:
            raise CacheError(f"{cache.path}: {len(classes)} classes, but model.num_classes is {self.num_classes}; "
                             f"set -o model.num_classes={len(classes)}")
        super().check_cache(cache, labels=labels)

    def dataset(self, cache: Cache, *, train: bool) -> CTCNVideos:
        return CTCNVideos(cache, rows=self.rows, concepts=self.concepts, anchor_kwargs=self.anchor_kwargs(),
                          **self.evaluated(cache, train))

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["features"]]

    def loss(self, outputs, batch: dict) -> paddle.Tensor:
        from ...models.ctcn import ctcn_loss

        loc, conf = outputs
        total = ctcn_loss(loc, conf, batch["loc_targets"], batch["cls_targets"])
        return total[0] if isinstance(total, tuple) else total

    def detections(self, outputs, batch: dict) -> Iterator[tuple[int, np.ndarray]]:
        """``(record index, detections [P, 4] (start, end, score, class 0-based))`` per video, start
        and end as fractions of the video."""
        from ..localization import ctcn_detections
        from ..targets import decode_ctcn

        loc, conf = (as_numpy(t) for t in outputs)
        scores = paddle.nn.functional.softmax(paddle.to_tensor(conf), axis=-1).numpy()
        settings = self.config.eval
        for row, index in enumerate(as_numpy(batch["index"]).tolist()):
            segments = decode_ctcn(loc[row], **self.anchor_kwargs()) / self.rows
            found = ctcn_detections(segments, scores[row], score_threshold=settings.score_threshold,
                                    nms_threshold=settings.nms_threshold, soft_sigma=settings.soft_nms_sigma,
                                    soft_threshold=settings.soft_threshold, top_k=settings.top_k or None)
            yield index, found

    def evaluator(self):
        from ...evaluators.detection import DetectionEvaluator

        return WithLoss(DetectionEvaluator())

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        indices = as_numpy(batch["index"])
        for index, found in self.detections(outputs, batch):
            truth = self.truth[index]
            evaluator.metric.update(truth.id, truth.segments, truth.labels, in_seconds(found, truth.duration))
        evaluator.add_loss(loss, len(indices))

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        from .activitynet import ground_truth

        truth = ground_truth(cache)
        names = classes or cache.classes or []
        for outputs, batch in results:
            for index, found in self.detections(outputs, batch):
                seconds = in_seconds(found, truth[index].duration)
                seconds = seconds[np.argsort(-seconds[:, 2], kind="stable")][:top_k]
                yield {"id": truth[index].id, "results": [
                    {"segment": [round(float(s), 2), round(float(e), 2)], "score": round(float(p), 6),
                     "label": names[int(c)] if int(c) < len(names) else str(int(c))}
                    for s, e, p, c in seconds]}

    def input_spec(self) -> list[paddle.static.InputSpec]:
        return [paddle.static.InputSpec([None, 1, self.rows, self.concepts], "float32", "features")]
