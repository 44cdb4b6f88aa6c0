"""YouTube-8M video classification on frame-level features: Attention Cluster, Attention LSTM, NeXtVLAD.

The cache is a ``youtube8m-frame`` cache (``vtk convert youtube8m``). One sample is a dict of
numpy arrays:

========  ======================  =============================================================
key       dtype, shape            content
========  ======================  =============================================================
``rgb``     uint8 ``[T, 1024]``     frame features as stored: quantized codes, 0 for padding
``audio``   uint8 ``[T, 128]``      audio features, likewise
``mask``    float32 ``[T]``         1 for a real frame, 0 for padding
``labels``  float32 ``[C]``         multi-hot over ``num_classes`` classes
``index``   int64 ``[]``            the record's index in the cache: ``cache[index]["id"]``
========  ======================  =============================================================

``T`` is ``max_frames`` (the first ``max_frames`` frames, zero-padded at the end), or
``num_samples`` when frames are sampled for Attention Cluster (see :func:`sampled_frames`).

The codes cross from the data workers to the training process as they are, a quarter of
the bytes of float32; :meth:`YouTube8MTask.inputs` turns a batch of them into the model's float32
features on the device (:func:`features`): dequantized (or the raw codes 0..255), 0 in padding,
equal to what ``codes=False`` makes in the worker with numpy.

The loss is sigmoid cross-entropy summed over the classes (mean over videos); the metrics are
Hit@1, PERR, GAP and mAP (:mod:`videotk.evaluators.youtube8m`); a prediction is a video's top
classes by sigmoid score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import paddle
import paddle.nn.functional as F

from ...formats import Cache, CacheError
from ...formats.schema import dequantize_youtube8m as dequantize
from ..sections import EvalSettings
from ..settings import Count, PositiveInt
from ..sharding import CacheDataset
from .base import Task, as_numpy, register_task
from .classification import classes_line, prediction_records

FRAME_KIND = "youtube8m-frame"
RGB_SIZE = 1024
AUDIO_SIZE = 128
NUM_CLASSES = 3862
MAX_FRAMES = 300
DEQUANTIZE_SCALE = np.float32(4.0 / 255.0)
DEQUANTIZE_BIAS = np.float32(4.0 / 512.0 - 2.0)


def sampled_frames(num_frames: int, num_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices int64 ``[num_samples]`` of frames sampled as the seed's Attention Cluster reader did.

    The video is cut into ``num_samples`` equal strides of ``num_frames / num_samples`` frames and
    one frame is taken per stride: at a uniformly random position with ``rng`` (training), at the
    centre without (evaluation; the seed drew random positions there too, centres make evaluation
    repeatable). A video shorter than ``num_samples`` repeats frames, as in the seed. ``num_frames``
    must be positive.
    """
    if rng is None:
        return (2 * np.arange(num_samples) + 1) * num_frames // (2 * num_samples)
    positions = (np.arange(num_samples) + rng.random(num_samples)) * (num_frames / num_samples)
    return np.minimum(positions.astype(np.int64), num_frames - 1)


def multi_hot(labels: np.ndarray, num_classes: int, video_id: str) -> np.ndarray:
    """float32 ``[num_classes]`` with 1 at each of ``labels`` ``[L]``; ValueError naming the video
    when a label is outside ``0 .. num_classes - 1``."""
    if len(labels) and not (0 <= labels.min() and labels.max() < num_classes):
        raise ValueError(
            f"video {video_id!r}: labels {labels.tolist()} outside 0..{num_classes - 1}; "
            f"set model.num_classes to the dataset's class count (3862 for 2018 YouTube-8M, 4716 for 2017)"
        )
    out = np.zeros(num_classes, np.float32)
    out[labels] = 1.0
    return out


def _codes(record: dict, key: str, width: int, frames: int) -> np.ndarray:
    """uint8 ``[frames, width]``: the first ``frames`` frames of the record's ``key`` blob."""
    blob = record[key]
    if len(blob) != record["num_frames"] * width:
        raise ValueError(
            f"video {record['id']!r}: {key} holds {len(blob)} bytes, not num_frames {record['num_frames']} x {width}"
        )
    return np.frombuffer(blob, np.uint8, count=frames * width).reshape(frames, width)


def features(codes: paddle.Tensor, mask: paddle.Tensor, *, dequantize: bool = True) -> paddle.Tensor:
    """float32 ``[N, T, D]`` of a batch of uint8 ``codes`` ``[N, T, D]``: dequantized (the formula of
    :func:`~videotk.formats.schema.dequantize_youtube8m`, in the same float32 steps) or the raw
    codes, with zero rows where ``mask`` ``[N, T]`` is 0 (padding; the mask is 0 or 1). Float
    ``codes`` (features made by the dataset with ``codes=False``) pass unchanged.

    The padding rows are overwritten with zeros (a scatter of the rows ``mask`` marks) rather than
    multiplied by the mask: on the CPU the broadcast multiplication cost as much as the cast and
    the scaling together (``docs/benchmarks.md``)."""
    if codes.dtype != paddle.uint8:
        return codes
    values = codes.astype("float32")
    if dequantize:
        values.scale_(float(DEQUANTIZE_SCALE), float(DEQUANTIZE_BIAS))  # in place: one pass, no new tensor
    padding = paddle.nonzero(mask.reshape([-1]) == 0).reshape([-1])
    if padding.shape[0] == 0:
        return values
    width = values.shape[-1]
    rows = paddle.scatter_(values.reshape([-1, width]), padding, paddle.zeros([padding.shape[0], width], "float32"))
    return rows.reshape(values.shape)


class YouTube8MFrames(CacheDataset):
    """Samples of a frame-level YouTube-8M cache (keys and shapes in the module docstring).

    Each data worker of each ``paddle.distributed`` rank reads its own share of the shards
    (:mod:`videotk.trainers.sharding`); together they read every record once per epoch.

    - ``train=False``: records in cache order, centre frames when sampling.
    - ``train=True``: shard order shuffled per epoch, then a shuffle buffer of ``shuffle_buffer``
      records (quantized, about 0.3 MB each for 300-frame videos) per worker, random frames when
      sampling. Deterministic for ``(seed, epoch)`` and the number of ranks and workers; call
      :meth:`set_epoch` before each epoch (the data workers are forked each epoch with a copy
      of the dataset as it is then).
    - ``num_samples``: Attention Cluster's input, ``num_samples`` frames sampled from the first
      ``max_frames`` (:func:`sampled_frames`). The mask is all ones, also for a video shorter than
      ``num_samples``, whose frames then repeat as in the seed; it is all zeros for a video
      without frames.
    - ``codes=True`` (default): ``rgb`` and ``audio`` are the uint8 codes (:func:`features` makes
      the model's input of them); ``codes=False``: float32 features made here, with numpy.
    - ``dequantize=False``: with ``codes=False``, the raw codes 0..255 as float32, as the seed fed
      NeXtVLAD (with ``codes=True`` it is :func:`features`' argument).
    - ``rank``, ``world_size``: default to ``paddle.distributed`` at iteration time. ``even``
      (default: ``train`` with more than one rank) gives every reader the same number of records,
      leaving out at most ``readers - 1`` per epoch, so ranks run the same number of batches.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        num_classes: int = NUM_CLASSES,
        max_frames: int = MAX_FRAMES,
        num_samples: int | None = None,
        dequantize: bool = True,
        codes: bool = True,
        train: bool = False,
        shuffle_buffer: int = 1024,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        even: bool | None = None,
    ):
        sizes = {"num_classes": num_classes, "max_frames": max_frames, "num_samples": num_samples}
        for name, value in sizes.items():
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        super().__init__(cache, train=train, shuffle_buffer=shuffle_buffer, seed=seed,
                         rank=rank, world_size=world_size, even=even)
        self.num_classes = num_classes
        self.max_frames = max_frames
        self.num_samples = num_samples
        self.dequantize = dequantize
        self.codes = codes

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        yield self.sample(index, record, rng)

    def sample(self, index: int, record: dict, rng: np.random.Generator | None = None) -> dict:
        """The sample of one cache record (a dict of the frame-level columns) at ``index``;
        ``rng`` draws the sampled frames (their centres without it)."""
        frames = min(record["num_frames"], self.max_frames)
        rgb = _codes(record, "rgb", RGB_SIZE, frames)
        audio = _codes(record, "audio", AUDIO_SIZE, frames)
        length = self.max_frames
        if self.num_samples is not None:
            length = self.num_samples
            if frames:
                rows = sampled_frames(frames, self.num_samples, rng)
                rgb, audio = rgb[rows], audio[rows]
        mask = np.zeros(length, np.float32)
        mask[: len(rgb)] = 1.0
        return {
            "rgb": self._features(rgb, length),
            "audio": self._features(audio, length),
            "mask": mask,
            "labels": multi_hot(record["labels"], self.num_classes, record["id"]),
            "index": np.array(index, np.int64),
        }

    def _features(self, codes: np.ndarray, length: int) -> np.ndarray:
        """``[length, D]``: uint8 ``codes`` ``[n, D]`` (or with ``codes=False`` float32 features of
        them), zero rows after them."""
        if self.codes:
            out = np.zeros((length, codes.shape[1]), np.uint8)
            out[: len(codes)] = codes
            return out
        out = np.zeros((length, codes.shape[1]), np.float32)
        if self.dequantize:
            dequantize(codes, out[: len(codes)])
        else:
            out[: len(codes)] = codes
        return out

    def __repr__(self) -> str:
        return (f"YouTube8MFrames({str(self.cache.path)!r}, records={len(self.cache)}, train={self.train}, "
                f"max_frames={self.max_frames}, num_samples={self.num_samples}, epoch={self.epoch})")


@dataclass(frozen=True)
class YouTube8MData:
    """The ``data`` section: see :class:`YouTube8MFrames` (``shuffle_buffer`` in records)."""

    max_frames: PositiveInt = MAX_FRAMES
    num_samples: PositiveInt | None = None
    dequantize: bool = True
    shuffle_buffer: Count = 1024


@dataclass(frozen=True)
class YouTube8MEval(EvalSettings):
    """The ``eval`` section: ``top_k`` predictions per video pooled for GAP and mAP (20 in the starter code)."""

    top_k: PositiveInt = 20


@register_task
class YouTube8MTask(Task):
    """Multi-label classification on YouTube-8M frame features: inputs ``rgb [N, T, 1024]``,
    ``audio [N, T, 128]``, ``mask [N, T]``; logits ``[N, num_classes]``."""

    name = "youtube8m"
    cache_kinds = (FRAME_KIND,)
    cache_hint = "convert frame-level tfrecords with `vtk convert youtube8m --level frame`"
    Data = YouTube8MData
    Eval = YouTube8MEval

    @property
    def num_classes(self) -> int:
        return self.config.model.get("num_classes", NUM_CLASSES)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        labels = [v for v in cache.column("labels") if len(v)]
        highest = int(max(v.max() for v in labels)) if labels else -1
        if highest >= self.num_classes:
            raise CacheError(f"{cache.path}: labels go up to {highest}, but model.num_classes is {self.num_classes}; "
                             f"set -o model.num_classes={highest + 1} or more (3862 for the 2018 YouTube-8M, "
                             f"4716 for 2017)")

    def dataset(self, cache: Cache, *, train: bool) -> YouTube8MFrames:
        data = self.data
        return YouTube8MFrames(cache, num_classes=self.num_classes, max_frames=data.max_frames,
                               num_samples=data.num_samples, dequantize=data.dequantize, train=train,
                               shuffle_buffer=data.shuffle_buffer, seed=self.config.train.seed)

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        """The model's float32 ``rgb``, ``audio`` and ``mask`` of a batch of codes (:func:`features`)."""
        mask, dequantize = batch["mask"], self.data.dequantize
        return [features(batch["rgb"], mask, dequantize=dequantize),
                features(batch["audio"], mask, dequantize=dequantize), mask]

    def loss(self, logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        per_class = F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
        return per_class.sum(axis=1).mean()

    @staticmethod
    def scores(logits: paddle.Tensor) -> np.ndarray:
        """Per-class probabilities ``[N, num_classes]``."""
        return F.sigmoid(logits).numpy()

    def evaluator(self):
        from ...evaluators.youtube8m import YouTube8MEvaluator

        return YouTube8MEvaluator(top_k=self.config.eval.top_k)

    def update(self, evaluator, logits, batch: dict, loss: float) -> None:
        evaluator.update(self.scores(logits), as_numpy(batch["labels"]), loss=loss)

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        batches = ((self.scores(logits), as_numpy(batch["index"])) for logits, batch in results)
        yield from prediction_records(batches, cache, views=1, top_k=top_k, classes=classes)

    def record_line(self, record: dict) -> str:
        return classes_line(record)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        frames = self.data.num_samples or self.data.max_frames
        return [
            paddle.static.InputSpec([None, frames, RGB_SIZE], "float32", "rgb"),
            paddle.static.InputSpec([None, frames, AUDIO_SIZE], "float32", "audio"),
            paddle.static.InputSpec([None, frames], "float32", "mask"),
        ]
