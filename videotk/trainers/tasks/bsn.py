"""Temporal action proposals on ActivityNet 1.3 with BSN, in three stages.

``vtk train bsn`` runs, each stage in its own folder of ``--save-dir``:

1. ``tem``: the temporal evaluation module learns start, end and action probabilities at every
   point of the ``activitynet`` cache's snippet features (checkpoints in ``SAVE_DIR/tem``);
2. ``pgm``: with the trained TEM, the proposal generation module turns every video of the
   training and evaluation subsets into candidate proposals with their BSP features and IoUs, in
   parallel with Dask, into ``bsn-proposals`` caches ``SAVE_DIR/pgm/train`` and
   ``SAVE_DIR/pgm/valid`` (:mod:`videotk.trainers.pgm`);
3. ``pem``: the proposal evaluation module learns each candidate's IoU from its BSP feature
   (checkpoints in ``SAVE_DIR/pem``), starting from the TEM stage's weights.

``--resume latest`` keeps every finished stage and continues the first unfinished one. The PEM
stage's ``train``, ``optimizer`` and ``lr_scheduler`` are the top-level ones with the keys of
``stages.pem`` (the seed trained PEM with Adam at 0.01 for 15 epochs).

Evaluation and prediction run the chain on each video: TEM, PGM (``data.proposals`` candidates),
PEM, score = start score x end score x PEM score, soft-NMS with the values the seed's code used
(alpha 0.75, thresholds 0.65 and 0.9: its YAML's ``snms_*`` keys were never read), the best 100
in seconds. One TEM sample:

============  =====================  ===============================================
key           dtype, shape           content
============  =====================  ===============================================
``features``  float32 ``[D, T]``     snippet features, time last
``targets``   float32 ``[3, T]``     start, end and action targets (the seed's order)
``index``     int64 ``[]``           the record's index in the cache
============  =====================  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import paddle

from ...formats import Cache, CacheError
from ..sections import EvalSettings
from ..settings import NonNegativeFloat, PositiveFloat, PositiveInt
from ..sharding import CacheDataset
from .activitynet import SubsetVideos, Truth, WithLoss, check_features, ground_truth, normalised
from .base import Task, as_numpy, register_task
from .proposals import ActivityNetTask, ProposalData, batch_rng, in_seconds


class TEMVideos(SubsetVideos):
    """TEM's samples (module docstring) of the records of ``subsets``."""

    def __init__(self, cache: Cache, *, tscale: int, **kwargs):
        super().__init__(cache, **kwargs)
        self.tscale = tscale

    def sample(self, index: int, record: dict, rng: np.random.Generator | None) -> dict:
        from ..targets import tem_targets

        features = np.asarray(record["features"], np.float32)
        if features.shape[0] != self.tscale:
            raise ValueError(f"features of {features.shape[0]} points, not tscale {self.tscale}")
        action, start, end = tem_targets(normalised(record["segments"], record["duration"]), self.tscale)
        return {"features": np.ascontiguousarray(features.T),
                "targets": np.stack([start, end, action]).astype(np.float32), "index": np.array(index, np.int64)}


class PEMVideos(CacheDataset):
    """PEM's samples of a ``bsn-proposals`` cache, one per video: ``bsp`` float32 ``[K, 32]`` and
    ``iou`` float32 ``[K]`` of its first ``proposals`` candidates (the seed's ``top_K``)."""

    def __init__(self, cache: Cache, *, proposals: int, **kwargs):
        super().__init__(cache, **kwargs)
        self.proposals = proposals

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        bsp, iou = np.asarray(record["bsp"], np.float32), np.asarray(record["iou"], np.float32)
        if len(bsp) < self.proposals:
            raise ValueError(f"{len(bsp)} proposals, fewer than data.proposals_train {self.proposals}")
        yield {"bsp": bsp[: self.proposals], "iou": iou[: self.proposals], "index": np.array(index, np.int64)}


@dataclass(frozen=True)
class BSNData(ProposalData):
    """The ``data`` section: subsets and shuffle buffer (:class:`ProposalData`); PGM's boundary
    ``pgm_threshold`` (x the curve's maximum), the proposals kept per training video
    (``proposals_train``, which PEM trains on) and per other video (``proposals``); the Dask
    processes that run PGM (``pgm_workers``, default every core) or a dask.distributed
    ``pgm_scheduler`` address."""

    pgm_threshold: NonNegativeFloat = 0.5
    proposals_train: PositiveInt = 500
    proposals: PositiveInt = 1000
    pgm_workers: PositiveInt | None = None
    pgm_scheduler: str | None = None


@dataclass(frozen=True)
class BSNEval(EvalSettings):
    """The ``eval`` section: soft-NMS as the seed's code ran it, and the proposals kept per video."""

    soft_nms_alpha: PositiveFloat = 0.75
    soft_nms_low: NonNegativeFloat = 0.65
    soft_nms_high: NonNegativeFloat = 0.9
    top_k: PositiveInt = 100


class _Stage(Task):
    """A stage of BSN: its config is the BSN config with the stage's train/optimizer keys."""

    Data = BSNData
    Eval = BSNEval

    def __init__(self, config, chain: "BSNTask") -> None:
        super().__init__(config)
        self.chain = chain

    def evaluator(self):
        return WithLoss(_NoMetric())

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        evaluator.add_loss(loss, int(batch["index"].shape[0]))


class _NoMetric:
    def summary(self) -> dict:
        return {}

    def reset(self) -> None:
        pass


class TEMStage(_Stage):
    name = "bsn"
    description = "training TEM (start, end and action probabilities at every point)"
    cache_kinds = ActivityNetTask.cache_kinds
    cache_hint = ActivityNetTask.cache_hint

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        self.chain.check_cache(cache, labels=False)

    def dataset(self, cache: Cache, *, train: bool) -> TEMVideos:
        return TEMVideos(cache, tscale=self.chain.tscale, **self.chain.evaluated(cache, train))

    def trained_layer(self, model):
        return model.tem

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["features"]]

    def forward(self, model, batch: dict):
        return model(batch["features"], "tem")

    def loss(self, outputs, batch: dict) -> paddle.Tensor:
        return self.chain.tem_loss(outputs, batch["targets"])


class PGMStage(_Stage):
    name = "bsn"
    derived = True
    description = "PGM: candidate proposals and BSP features of every video, with Dask"

    def derive(self, config, weights: Path | None, shards, valid_shards, out: Path, *, overwrite: bool, device: str,
               notify) -> bool:
        """Write PGM's caches of the training and evaluation videos into ``out/train`` and
        ``out/valid``; True when any had to be written (not already there for these TEM weights)."""
        from ..checkpoint import weights_file
        from ..pgm import PGMSettings, fingerprint, is_current, run_pgm, weights_digest

        chain = self.chain
        data = config.data
        settings = PGMSettings(threshold=data.pgm_threshold, top_k_train=data.proposals_train, top_k=data.proposals)
        model = chain.trained_model(weights, device)
        digest = weights_digest(weights_file(weights))
        sources, changed = [("train", shards, data.train_subsets)], False
        if valid_shards is not None:
            sources.append(("valid", valid_shards, data.eval_subsets))
        for name, path, subsets in sources:
            cache = chain.open(path, labels=False)
            source = {"tem_weights": digest, "source": str(Path(path).resolve()),
                      "source_manifest": _manifest_digest(cache), "subsets": list(subsets)}
            if is_current(out / name, fingerprint(settings, source, "parquet")):
                notify({"event": "notice", "message": f"PGM: {out / name} is up to date"})
                continue
            videos = chain.tem_videos(model, cache, subsets)
            target = run_pgm(videos, out / name, settings=settings, source=source, workers=data.pgm_workers,
                             scheduler=data.pgm_scheduler, seed=config.train.seed)
            changed = True
            notify({"event": "notice", "message": f"PGM: {len(videos)} videos of {path} into {target}"})
        return changed


def _manifest_digest(cache: Cache) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(cache.manifest["shards"], sort_keys=True).encode()).hexdigest()


class PEMStage(_Stage):
    name = "bsn"
    description = "training PEM (the IoU of each candidate proposal from its BSP feature)"
    cache_kinds = ("bsn-proposals",)
    cache_hint = "the PGM stage of `vtk train bsn` writes it into SAVE_DIR/pgm"

    def caches(self, shards, valid_shards, save_dir) -> tuple[Cache, Cache | None]:
        train = self.open(Path(save_dir) / "pgm" / "train", labels=False)
        valid = self.open(Path(save_dir) / "pgm" / "valid", labels=False) if valid_shards else None
        return train, valid

    def open(self, path, *, labels: bool = True) -> Cache:
        if not (Path(path) / "manifest.json").is_file():
            raise CacheError(f"{path}: no PGM cache; the pgm stage of `vtk train bsn` writes it (run the same "
                             "command with --resume latest)")
        return super().open(path, labels=labels)

    def dataset(self, cache: Cache, *, train: bool) -> PEMVideos:
        return PEMVideos(cache, proposals=self.data.proposals_train, train=train, shuffle_buffer=self.data.shuffle_buffer,
                         seed=self.config.train.seed)

    def trained_layer(self, model):
        return model.pem

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["bsp"]]

    def forward(self, model, batch: dict):
        return model(batch["bsp"], "pem")

    def loss(self, outputs, batch: dict, rng: np.random.Generator | None = None) -> paddle.Tensor:
        from ...models.bsn import pem_loss

        return pem_loss(outputs.reshape([-1]), batch["iou"].reshape([-1]), rng=rng)

    def evaluate_batch(self, model, batch: dict):
        outputs = self.forward(model, batch)
        return outputs, float(self.loss(outputs, batch, rng=batch_rng(batch)))


@register_task
class BSNTask(ActivityNetTask):
    """BSN's chain (module docstring). The model is :class:`videotk.models.bsn.BSN`, which holds
    TEM (``model(features [N, D, T], "tem")`` -> ``[N, 3, T]``) and PEM (``model(bsp [..., 32],
    "pem")`` -> IoU scores ``[...]``)."""

    name = "bsn"
    Data = BSNData
    Eval = BSNEval
    stages = ("tem", "pgm", "pem")

    @property
    def tscale(self) -> int:
        return self.config.model.get("tscale", 100)

    def stage(self, name: str) -> Task:
        config = self.config.for_stage(name)
        return {"tem": TEMStage, "pgm": PGMStage, "pem": PEMStage}[name](config, self)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        check_features(cache, kind="snippet", model=self.config.model.name, tscale=self.tscale,
                       feature_dim=self.config.model.get("feat_dim", 400))
        super().check_cache(cache, labels=labels)

    def dataset(self, cache: Cache, *, train: bool) -> TEMVideos:
        return TEMVideos(cache, tscale=self.tscale, **self.evaluated(cache, train))

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["features"]]

    def forward(self, model, batch: dict):
        return model(batch["features"], "tem")

    @staticmethod
    def tem_loss(outputs, targets) -> paddle.Tensor:
        from ...models.bsn import tem_loss

        total = tem_loss(outputs, targets[:, 0], targets[:, 1], targets[:, 2])
        return total[0] if isinstance(total, tuple) else total

    def loss(self, outputs, batch: dict) -> paddle.Tensor:
        return self.tem_loss(outputs, batch["targets"])

    def trained_model(self, weights: Path | None, device: str):
        """The BSN model with ``weights`` loaded, in evaluation mode."""
        from ..checkpoint import load_weights
        from ..loop import build_model

        model = build_model(self.config)
        if weights is not None:
            load_weights(model, weights)
        model.eval()
        return model

    def tem_videos(self, model, cache: Cache, subsets: tuple[str, ...]):
        """PGM's input: the TEM curves of every video of ``subsets`` in ``cache``."""
        from ..pgm import Video

        dataset = TEMVideos(cache, tscale=self.tscale, subsets=subsets, train=False, shuffle_buffer=1,
                            seed=self.config.train.seed)
        truth, subset_of = ground_truth(cache), cache.column("subset")
        loader = self.loader_of(dataset)
        videos = []
        with paddle.no_grad():
            for batch in loader:
                curves = as_numpy(model(batch["features"], "tem"))
                for row, index in enumerate(as_numpy(batch["index"]).tolist()):
                    t = truth[index]
                    videos.append(Video(index, t.id, subset_of[index], t.duration, curves[row],
                                        normalised(t.segments, t.duration)))
        return videos

    def loader_of(self, dataset):
        from ..loader import make_loader

        return make_loader(dataset, batch_size=self.config.eval.batch_size, num_workers=0)

    def proposals(self, model, outputs, batch: dict) -> Iterator[tuple[int, np.ndarray]]:
        """``(record index, proposals [P, 3] (start, end, score) as fractions)`` per video: PGM on
        the TEM curves, PEM on their BSP features, then soft-NMS."""
        from ..localization import bsn_scores, bsp_features, pgm_proposals, soft_nms

        curves = as_numpy(outputs)
        settings, data = self.config.eval, self.data
        for row, index in enumerate(as_numpy(batch["index"]).tolist()):
            start, end, action = (c.astype(np.float64) for c in curves[row])
            found = pgm_proposals(start, end, peak_threshold=data.pgm_threshold, top_k=data.proposals,
                                  seed=np.random.default_rng([self.config.train.seed, index]))
            bsp = np.asarray(bsp_features(action, found), np.float32)
            iou = as_numpy(model(paddle.to_tensor(bsp), "pem")).reshape(-1)
            kept = soft_nms(bsn_scores(found, iou), alpha=settings.soft_nms_alpha, low_threshold=settings.soft_nms_low,
                            high_threshold=settings.soft_nms_high, top_k=settings.top_k)
            yield index, kept

    def evaluate_batch(self, model, batch: dict):
        outputs = self.forward(model, batch)
        return (outputs, list(self.proposals(model, outputs, batch))), float(self.loss(outputs, batch))

    def predict_batch(self, model, batch: dict):
        outputs = self.forward(model, batch)
        return list(self.proposals(model, outputs, batch))

    def evaluator(self):
        from ...evaluators.proposals import ProposalEvaluator

        return WithLoss(ProposalEvaluator())

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        _, found = outputs
        for index, proposals in found:
            truth: Truth = self.truth[index]
            evaluator.metric.update(truth.id, truth.segments, in_seconds(proposals, truth.duration))
        evaluator.add_loss(loss, int(batch["index"].shape[0]))

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        truth = ground_truth(cache)
        for found, _ in results:
            for index, proposals in found:
                seconds = in_seconds(proposals, truth[index].duration)[:top_k]
                yield {"id": truth[index].id, "results": [
                    {"segment": [round(float(s), 2), round(float(e), 2)], "score": round(float(p), 6)}
                    for s, e, p in seconds]}

    def input_spec(self):
        raise CacheError("bsn runs a numpy stage (PGM) between its two networks, so it cannot be exported as one "
                         "inference model; evaluate and predict with the checkpoint folder")
