"""What the ActivityNet 1.3 localization tasks share: the cache, its subsets, the ground truth, and
the result file.

The cache is an ``activitynet`` cache (``vtk convert activitynet``): one record per video with
``id`` (without ``v_``), ``subset`` (``training``, ``validation``, ``testing``), ``duration``
(seconds), ``features`` float32 ``[T, D]``, ``segments`` ``[K, 2]`` (seconds) and ``labels``
``[K]`` (indices into the manifest's sorted class list). The manifest's options say the feature
kind: ``snippet`` features rescaled to ``tscale`` points (BMN, BSN) or C-TCN's ``scores`` at their
native length.

One cache holds every subset. A task's ``data.train_subsets`` say which records train (the seed's
``train_val`` is ``[training, validation]``); ``data.eval_subsets`` which are evaluated and
predicted. Records of other subsets are skipped by the dataset and left out of the step count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...formats import Cache, CacheError
from ..sharding import CacheDataset, ReaderSlot, reading_plan

KIND = "activitynet"
HINT = "convert ActivityNet features and annotations with `vtk convert activitynet`"
SUBSETS = ("training", "validation", "testing")


@dataclass(frozen=True)
class Truth:
    """The ground truth of one video: ``segments`` ``[K, 2]`` in seconds, ``labels`` ``[K]``."""

    id: str
    duration: float
    segments: np.ndarray
    labels: np.ndarray


def cache_options(cache: Cache) -> dict:
    """The conversion options in the manifest (``tscale``, ``feature_kind``, ``feature_dim``)."""
    return dict(cache.manifest.get("options") or {})


def ground_truth(cache: Cache) -> list[Truth]:
    """The ground truth of every record of ``cache``, in record order (reads no features)."""
    columns = [cache.column(name) for name in ("id", "duration", "segments", "labels")]
    return [Truth(str(i), float(d), np.asarray(s, np.float64).reshape(-1, 2), np.asarray(lab, np.int64))
            for i, d, s, lab in zip(*columns)]


def normalised(segments: np.ndarray, duration: float) -> np.ndarray:
    """``segments`` ``[K, 2]`` in seconds as fractions of ``duration``, clipped to [0, 1] (the seed's
    rule: divide by the duration in seconds, without BSN's frame-count correction)."""
    if duration <= 0:
        return np.zeros((0, 2), np.float64)
    return np.clip(np.asarray(segments, np.float64).reshape(-1, 2) / duration, 0.0, 1.0)


def check_subsets(subsets: tuple[str, ...], where: str) -> None:
    from ..settings import ConfigError

    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise ConfigError(f"config key {where}: unknown subset {unknown[0]!r}; ActivityNet has {', '.join(SUBSETS)}")


def check_features(cache: Cache, *, kind: str, model: str, tscale: int | None = None,
                   feature_dim: int | None = None) -> None:
    """CacheError when the cache's features are not what the model reads: the kind (``snippet``
    or ``scores``), the number of points ``tscale`` and the dimension."""
    options = cache_options(cache)
    found = options.get("feature_kind")
    if found != kind:
        what = {"snippet": "snippet features rescaled to tscale points (csv_mean_100, fix_feat_100 or raw "
                           "snippet features)",
                "scores": "C-TCN's rgb and flow score sequences"}
        raise CacheError(f"{cache.path}: holds {what.get(found, repr(found))}, but {model} reads {what[kind]}; "
                         f"{HINT}")
    if tscale is not None and options.get("tscale") != tscale:
        raise CacheError(f"{cache.path}: features rescaled to {options.get('tscale')} points, but the model's "
                         f"tscale is {tscale}; convert again with --tscale {tscale} or set -o model.tscale="
                         f"{options.get('tscale')}")
    if feature_dim is not None and options.get("feature_dim") not in (None, feature_dim):
        raise CacheError(f"{cache.path}: features of dimension {options.get('feature_dim')}, but the model reads "
                         f"{feature_dim}; set -o model.feat_dim={options.get('feature_dim')}")


def check_evaluable(cache: Cache, subsets: tuple[str, ...]) -> None:
    """CacheError when none of ``subsets``' videos of ``cache`` has a ground-truth segment."""
    present = [s for s in cache.column("subset") if s in subsets]
    if not present:
        found = sorted(set(cache.column("subset")))
        raise CacheError(f"{cache.path}: no video of the subsets {', '.join(subsets)} (the cache has "
                         f"{', '.join(found) or 'none'}); set -o data.eval_subsets=[...]")
    annotated = [s for s, k in zip(cache.column("subset"), cache.column("segments")) if s in subsets and len(k)]
    if not annotated:
        raise CacheError(f"{cache.path}: the {', '.join(subsets)} videos have no ground-truth segments to "
                         "evaluate against (a testing subset has none); predict on them instead")


class SubsetVideos(CacheDataset):
    """Samples of the records of ``subsets`` only, one per record; the others are skipped, and
    :meth:`reader_samples` counts only the kept ones, so the loader's step count stays exact."""

    def __init__(self, cache: Cache, *, subsets: tuple[str, ...], train: bool, shuffle_buffer: int, seed: int,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__(cache, train=train, shuffle_buffer=shuffle_buffer, seed=seed, rank=rank,
                         world_size=world_size, even=False)
        self.subsets = tuple(subsets)
        self.kept = np.array([s in self.subsets for s in cache.column("subset")], bool)

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        if self.kept[index]:
            yield self.sample(index, record, rng)

    def sample(self, index: int, record: dict, rng: np.random.Generator | None) -> dict:
        raise NotImplementedError

    def reader_samples(self, num_workers: int) -> list[int]:
        import paddle

        rank = paddle.distributed.get_rank() if self.rank is None else self.rank
        world = paddle.distributed.get_world_size() if self.world_size is None else self.world_size
        rows = [entry["rows"] for entry in self.cache.shards]
        starts = np.concatenate([[0], np.cumsum(rows)])
        sizes = []
        for worker in range(num_workers):
            reader = ReaderSlot(rank, world, worker, num_workers)
            spans = reading_plan(rows, reader, seed=self.seed, epoch=self.epoch, shuffle=self.train, even=False)
            sizes.append(int(sum(self.kept[starts[s.shard] + s.start: starts[s.shard] + s.stop].sum() for s in spans)))
        return sizes


class WithLoss:
    """An evaluator fed one video at a time (``metric.update(...)``) plus the batches' mean loss:
    ``summary()`` is the metric's with ``avg_loss``."""

    def __init__(self, metric) -> None:
        from ...evaluators.base import MeanLoss

        self.metric, self.loss = metric, MeanLoss()

    def add_loss(self, loss: float, examples: int) -> None:
        self.loss.add(loss, examples)

    def summary(self) -> dict:
        return self.loss.into(dict(self.metric.summary()))

    def reset(self) -> None:
        self.metric.reset()
        self.loss.__init__()
