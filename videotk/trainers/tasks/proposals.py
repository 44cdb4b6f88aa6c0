"""Temporal action proposals on ActivityNet 1.3 with BMN.

The cache is an ``activitynet`` cache of snippet features rescaled to ``tscale`` points
(:mod:`~videotk.trainers.tasks.activitynet`). One sample is a dict of numpy arrays:

==============  ===========================  ==================================================
key             dtype, shape                 content
==============  ===========================  ==================================================
``features``    float32 ``[D, tscale]``      the video's features, time last (the seed's layout)
``gt_iou_map``  float32 ``[dscale, tscale]`` max IoU of proposal (start ``t``, length ``d + 1``)
                                             with a ground truth
``gt_start``    float32 ``[tscale]``         the seed's start-boundary targets
``gt_end``      float32 ``[tscale]``         its end-boundary targets
``index``       int64 ``[]``                 the record's index in the cache
==============  ===========================  ==================================================

The targets are :func:`videotk.trainers.targets.bmn_targets` of the ground truth normalised by the
duration in seconds (the seed's rule). The loss is BMN's (TEM + 10 x regression + classification);
evaluation turns the maps into proposals (:func:`videotk.trainers.localization.bmn_proposals`,
then soft-NMS with the values the seed's code used), in seconds, and scores AR@AN and the AUC as
ActivityNet's evaluation does. ``vtk predict bmn`` writes ActivityNet's result file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import paddle

from ...formats import Cache
from ..sections import EvalSettings
from ..settings import Count, NonNegativeFloat, PositiveFloat, PositiveInt
from .activitynet import (HINT, KIND, SubsetVideos, Truth, WithLoss, check_evaluable, check_features, check_subsets,
                          ground_truth, normalised)
from .base import Task, as_numpy, register_task


class BMNVideos(SubsetVideos):
    """BMN's samples (module docstring) of the records of ``subsets``."""

    def __init__(self, cache: Cache, *, tscale: int, dscale: int, **kwargs):
        super().__init__(cache, **kwargs)
        self.tscale, self.dscale = tscale, dscale

    def sample(self, index: int, record: dict, rng: np.random.Generator | None) -> dict:
        from ..targets import bmn_targets

        features = np.asarray(record["features"], np.float32)
        if features.shape[0] != self.tscale:
            raise ValueError(f"features of {features.shape[0]} points, not tscale {self.tscale}")
        iou_map, start, end = bmn_targets(normalised(record["segments"], record["duration"]), self.tscale,
                                          self.dscale)
        return {"features": np.ascontiguousarray(features.T), "gt_iou_map": iou_map.astype(np.float32),
                "gt_start": start.astype(np.float32), "gt_end": end.astype(np.float32),
                "index": np.array(index, np.int64)}


@dataclass(frozen=True)
class ProposalData:
    """The ``data`` section: which subsets train and which are evaluated and predicted
    (``[training, validation]`` is the seed's ``train_val``), and the shuffle buffer (records)."""

    train_subsets: tuple[str, ...] = ("training",)
    eval_subsets: tuple[str, ...] = ("validation",)
    shuffle_buffer: Count = 256


@dataclass(frozen=True)
class ProposalEval(EvalSettings):
    """The ``eval`` section: soft-NMS (the values the seed's post-processing ran with: its YAML's
    ``snms_*`` keys were never passed to it) and proposals kept per video (100, as the metric's
    AN range)."""

    soft_nms_alpha: PositiveFloat = 0.4
    soft_nms_low: NonNegativeFloat = 0.55
    soft_nms_high: NonNegativeFloat = 0.9
    top_k: PositiveInt = 100


class ActivityNetTask(Task):
    """What BMN, BSN and C-TCN tasks share: subsets, the ground truth of the evaluated cache."""

    cache_kinds = (KIND,)
    cache_hint = HINT
    Data = ProposalData

    @classmethod
    def check_config(cls, config) -> None:
        check_subsets(config.data.train_subsets, "data.train_subsets")
        check_subsets(config.data.eval_subsets, "data.eval_subsets")

    def __init__(self, config) -> None:
        super().__init__(config)
        self.truth: list[Truth] = []

    def evaluated(self, cache: Cache, train: bool) -> dict:
        """The dataset arguments for ``train`` or evaluation; remembers the evaluated cache's ground truth."""
        if not train:
            self.truth = ground_truth(cache)
        subsets = self.data.train_subsets if train else self.data.eval_subsets
        return {"subsets": subsets, "train": train, "shuffle_buffer": self.data.shuffle_buffer,
                "seed": self.config.train.seed}

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        if labels:
            check_evaluable(cache, self.data.eval_subsets)

    def write_predictions(self, records, file) -> int:
        from ..localization import activitynet_results

        import json

        results = activitynet_results(list(records))
        json.dump(results, file)
        file.write("\n")
        return len(results["results"])

    def record_line(self, record: dict) -> str:
        best = record["results"][:3]
        shown = ", ".join(f"{p['segment'][0]:.1f}-{p['segment'][1]:.1f} s {p['score']:.3f}" for p in best)
        return f"{len(record['results'])} segments; best: {shown}"


@register_task
class BMNTask(ActivityNetTask):
    """BMN: input ``features [N, D, tscale]``; outputs the confidence map ``[N, 2, dscale,
    tscale]`` and the start and end probabilities ``[N, tscale]``."""

    name = "bmn"
    Eval = ProposalEval

    @property
    def tscale(self) -> int:
        return self.config.model.get("tscale", 100)

    @property
    def dscale(self) -> int:
        return self.config.model.get("dscale", 100)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        check_features(cache, kind="snippet", model=self.config.model.name, tscale=self.tscale,
                       feature_dim=self.config.model.get("feat_dim", 400))
        super().check_cache(cache, labels=labels)

    def dataset(self, cache: Cache, *, train: bool) -> BMNVideos:
        return BMNVideos(cache, tscale=self.tscale, dscale=self.dscale, **self.evaluated(cache, train))

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["features"]]

    def loss(self, outputs, batch: dict, rng: np.random.Generator | None = None) -> paddle.Tensor:
        from ...models.bmn import bmn_loss

        confidence, start, end = outputs
        total, _ = bmn_loss(confidence, start, end, batch["gt_iou_map"], batch["gt_start"], batch["gt_end"], rng=rng)
        return total

    def evaluate_batch(self, model, batch: dict):
        """The outputs, and the loss with its sampling masks drawn from a generator seeded by the
        batch's first record, so that evaluation gives the same loss every time."""
        outputs = self.forward(model, batch)
        return outputs, float(self.loss(outputs, batch, rng=batch_rng(batch)))

    def proposals(self, outputs, batch: dict) -> Iterator[tuple[int, np.ndarray]]:
        """``(record index, proposals [P, 3] (start, end, score) in seconds)`` per video of a batch."""
        from ..localization import bmn_proposals, soft_nms

        confidence, start, end = (as_numpy(t) for t in outputs)
        settings = self.config.eval
        for row, index in enumerate(as_numpy(batch["index"]).tolist()):
            found = bmn_proposals(start[row], end[row], confidence[row], tscale=self.tscale, dscale=self.dscale)
            kept = soft_nms(found, alpha=settings.soft_nms_alpha, low_threshold=settings.soft_nms_low,
                            high_threshold=settings.soft_nms_high, top_k=settings.top_k)
            yield index, kept

    def evaluator(self):
        from ...evaluators.proposals import ProposalEvaluator

        return WithLoss(ProposalEvaluator())

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        indices = as_numpy(batch["index"])
        for index, found in self.proposals(outputs, batch):
            truth = self.truth[index]
            evaluator.metric.update(truth.id, truth.segments, in_seconds(found, truth.duration))
        evaluator.add_loss(loss, len(indices))

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        truth = ground_truth(cache)
        for outputs, batch in results:
            for index, found in self.proposals(outputs, batch):
                seconds = in_seconds(found, truth[index].duration)[:top_k]
                yield {"id": truth[index].id, "results": [
                    {"segment": [round(float(s), 2), round(float(e), 2)], "score": round(float(p), 6)}
                    for s, e, p in seconds]}

    def input_spec(self) -> list[paddle.static.InputSpec]:
        return [paddle.static.InputSpec([None, self.config.model.get("feat_dim", 400), self.tscale], "float32",
                                        "features")]


def batch_rng(batch: dict) -> np.random.Generator:
    """A generator seeded by the first record index of ``batch`` (repeatable evaluation losses)."""
    return np.random.default_rng(int(as_numpy(batch["index"]).reshape(-1)[0]))


def in_seconds(proposals: np.ndarray, duration: float) -> np.ndarray:
    """Proposals ``[P, 3+]`` (start, end, score, ...) with start and end as fractions of the video,
    in seconds, clipped to the video."""
    out = np.array(proposals, np.float64)
    if out.ndim != 2:
        out = out.reshape(0, 3)
    out[:, :2] = np.clip(out[:, :2], 0.0, 1.0) * duration
    return out
