"""Kinetics video classification on decoded frames: TSN, TSM, StNet and Non-local.

The cache is a ``kinetics`` cache (``vtk decode kinetics``). One sample is a dict of numpy arrays:

==========  ========================  ===========================================================
key         dtype, shape              content
==========  ========================  ===========================================================
``frames``  uint8 ``[T, S, S, 3]``    RGB frames; mode ``"tsn"``: ``T = seg_num * seglen``, segment
                                      after segment (:mod:`videotk.trainers.clips`); mode
                                      ``"dense"`` (Non-local): ``T = num_frames_out``
``label``   int64 ``[]``              class index (-1 for the unlabelled test split)
``index``   int64 ``[]``              the record's index in the cache: ``cache[index]["id"]``
``view``    int64 ``[]``              the test view (clip x crop) of that video; 0 in training
==========  ========================  ===========================================================

The ``data`` section holds the :class:`~videotk.trainers.clips.ClipSampler` settings, and
``data.test`` overrides some of them for evaluation and prediction (the seed tests StNet on 25
segments and Non-local on 30 views of 256 pixels). Segment-mode batches ``[N, seg_num * seglen,
3, H, W]`` become the model input ``[N, seg_num, seglen * 3, H, W]``; dense clips ``[N, 3, T, H,
W]`` pass as they are. The frames cross from the data workers as uint8, a quarter of the
bytes of float32; :meth:`KineticsTask.inputs` normalises a batch on the device
(:func:`normalized`), equal to what ``normalized=True`` makes in the worker with numpy. The loss is softmax cross-entropy; the metrics are top-1 / top-5 per clip
and per video (scores averaged over the test views, :mod:`videotk.evaluators.kinetics`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import paddle
import paddle.nn.functional as F

from ...formats import Cache, CacheError
from ..clips import ClipSampler
from ..settings import ConfigError, Count, parse_settings
from ..sharding import CacheDataset
from ..transforms import NORMALIZE_SCALE, NORMALIZE_SHIFT
from .base import Task, as_numpy, register_task
from .classification import classes_line, prediction_records, top_classes

KIND = "kinetics"


def normalized(frames: paddle.Tensor, layout: str) -> paddle.Tensor:
    """float32 ``[N, T, 3, H, W]`` (``layout="TCHW"``) or ``[N, 3, T, H, W]`` (``"CTHW"``) of a batch
    of uint8 clips ``[N, T, H, W, 3]``: :func:`~videotk.trainers.transforms.normalize` in the same
    float32 steps. Float clips (made by a dataset with ``normalized=True``) pass unchanged."""
    if frames.dtype != paddle.uint8:
        return frames
    values = frames.astype("float32").multiply_(paddle.to_tensor(NORMALIZE_SCALE))
    values.subtract_(paddle.to_tensor(NORMALIZE_SHIFT))  # in place: no new tensors
    return values.transpose([0, 1, 4, 2, 3] if layout == "TCHW" else [0, 4, 1, 2, 3])


class KineticsClips(CacheDataset):
    """Samples of a Kinetics cache (keys and shapes in the module docstring), made by ``sampler``.

    Each data worker of each ``paddle.distributed`` rank reads its own share of the shards
    (:mod:`videotk.trainers.sharding`); together they read every record once per epoch.

    - ``train=False``: records in cache order, ``sampler.num_views`` samples per record.
    - ``train=True``: shard order shuffled per epoch, then a shuffle buffer of ``shuffle_buffer``
      records per worker (a record holds all its frames: a 10 s clip at 25 fps, 256 x 340, is a
      few MB of JPEGs, or 65 MB raw), random clips and augmentation.
      Deterministic for ``(seed, epoch)`` and the number of ranks and workers; call
      :meth:`set_epoch` before each epoch.
    - ``normalized=True``: ``frames`` float32 ``[T, 3, S, S]`` or ``[3, T, S, S]``, the model's
      input made here with numpy (:meth:`ClipSampler.tensor`), instead of the uint8 frames.
    - ``rank``, ``world_size``, ``even``: as for
      :class:`videotk.trainers.tasks.youtube8m.YouTube8MFrames`.
    """

    def __init__(self, cache: Cache, sampler: ClipSampler, *, train: bool = False, shuffle_buffer: int = 16,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None, even: bool | None = None,
                 normalized: bool = False):
        self.sampler = sampler
        self.normalized = normalized
        super().__init__(cache, train=train, shuffle_buffer=shuffle_buffer, seed=seed,
                         rank=rank, world_size=world_size, even=even)

    def samples_per_record(self) -> int:
        return 1 if self.train else self.sampler.num_views

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        """The samples of one cache record at ``index``: one random training clip with ``rng``,
        the test views without it."""
        label = np.array(record["label"], np.int64)
        position = np.array(index, np.int64)
        if rng is not None:
            clips = [self.sampler.train_clip(record, rng)]
        else:
            clips = self.sampler.views(record)
        for view, frames in enumerate(clips):
            if self.normalized:
                frames = self.sampler.tensor(frames)
            yield {"frames": frames, "label": label, "index": position, "view": np.array(view, np.int64)}

    def __repr__(self) -> str:
        return (f"KineticsClips({str(self.cache.path)!r}, records={len(self.cache)}, train={self.train}, "
                f"{self.sampler}, epoch={self.epoch})")



SAMPLER_KEYS = tuple(f.name for f in dataclasses.fields(ClipSampler))


@dataclass(frozen=True)
class KineticsData(ClipSampler):
    """The ``data`` section: the clip sampling of training, ``shuffle_buffer`` (records), and
    ``test``, the sampling keys that evaluation and prediction change."""

    shuffle_buffer: Count = 16
    test: dict = field(default_factory=dict)

    def sampler(self, train: bool) -> ClipSampler:
        """The clip sampler of training, or of evaluation with ``test`` applied."""
        sampling = ClipSampler(**{key: getattr(self, key) for key in SAMPLER_KEYS})
        return sampling if train else dataclasses.replace(sampling, **self.test)


@register_task
class KineticsTask(Task):
    """Single-label classification of video clips; logits ``[N, num_classes]``."""

    name = "kinetics"
    cache_kinds = (KIND,)
    cache_hint = "decode video clips with `vtk decode kinetics`"
    Data = KineticsData
    raw_inputs = "video files"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.segments = self.data.mode == "tsn"
        self.views = self.data.sampler(train=False).num_views

    @classmethod
    def parse_data(cls, section: dict) -> KineticsData:
        section = dict(section)
        test = parse_settings(ClipSampler, section.pop("test", None), "data.test", partial=True)
        data = dataclasses.replace(parse_settings(KineticsData, section, "data"), test=test)
        try:
            data.sampler(train=False)
        except ValueError as exc:
            raise ConfigError(f"config section data.test: {exc}") from None
        return data

    @classmethod
    def check_config(cls, config) -> None:
        """Sampling keys the model also takes (``seg_num``, ``seglen``) must agree with it; a model
        with ``fixed_segments`` (TSM) also needs them at test time."""
        from ...models import model_class

        test = config.data.sampler(train=False)
        fixed = getattr(model_class(config.model.name), "fixed_segments", False)
        for key in ("seg_num", "seglen"):
            if key not in config.model.arguments:
                continue
            built = config.model.arguments[key]
            if built != getattr(config.data, key):
                raise ConfigError(f"config key data.{key}: {getattr(config.data, key)} contradicts model.{key} "
                                  f"{built}; the model is built for the clips it is trained on")
            if fixed and built != getattr(test, key):
                raise ConfigError(f"config key data.test.{key}: {getattr(test, key)} contradicts model.{key} {built}; "
                                  f"{config.model.name} takes exactly {built} at test time too")

    @property
    def num_classes(self) -> int:
        return self.config.model.get("num_classes", 400)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        if cache.classes and len(cache.classes) > self.num_classes:
            raise CacheError(f"{cache.path}: {len(cache.classes)} classes, but model.num_classes is "
                             f"{self.num_classes}; set -o model.num_classes={len(cache.classes)}")
        found = np.asarray(cache.column("label"), np.int64)
        if found.size and found.max() >= self.num_classes:
            raise CacheError(f"{cache.path}: labels go up to {found.max()}, but model.num_classes is "
                             f"{self.num_classes}; set -o model.num_classes={found.max() + 1}")
        unlabelled = int((found < 0).sum())
        if labels and unlabelled:
            raise CacheError(f"{cache.path}: {unlabelled} of {found.size} clips have no label (-1: a test split); "
                             "training and evaluation need labelled clips, vtk predict scores them")

    def dataset(self, cache: Cache, *, train: bool) -> KineticsClips:
        return KineticsClips(cache, self.data.sampler(train), train=train, shuffle_buffer=self.data.shuffle_buffer,
                             seed=self.config.train.seed)

    def model_input(self, frames: paddle.Tensor) -> paddle.Tensor:
        """A batch of clips as the model takes it (segments as StNet's super-images)."""
        if not self.segments:
            return frames
        n, f, c, h, w = frames.shape
        return frames.reshape([n, f // self.data.seglen, self.data.seglen * c, h, w])

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        """The model's float32 clips of a batch of uint8 frames (:func:`normalized`)."""
        return [self.model_input(normalized(batch["frames"], self.data.layout))]

    def loss(self, logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        return F.cross_entropy(logits, batch["label"].reshape([-1, 1]))

    @staticmethod
    def scores(logits: paddle.Tensor) -> np.ndarray:
        """Class probabilities ``[N, num_classes]``."""
        return F.softmax(logits, axis=-1).numpy()

    def evaluator(self):
        from ...evaluators.kinetics import KineticsEvaluator

        return KineticsEvaluator(self.num_classes)

    def update(self, evaluator, logits, batch: dict, loss: float) -> None:
        evaluator.update(self.scores(logits), as_numpy(batch["label"]), as_numpy(batch["index"]), loss=loss)

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        batches = ((self.scores(logits), as_numpy(batch["index"])) for logits, batch in results)
        yield from prediction_records(batches, cache, views=self.views, top_k=top_k, classes=classes)

    def record_line(self, record: dict) -> str:
        return classes_line(record)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        """The test clips: ``[N, seg_num, seglen * 3, H, W]`` or ``[N, 3, T, H, W]``, with the
        evaluation's segment or frame count fixed (TSM's shift needs it) and any frame size."""
        test = self.data.sampler(train=False)
        if self.segments:
            return [paddle.static.InputSpec([None, test.seg_num, test.seglen * 3, None, None], "float32", "frames")]
        return [paddle.static.InputSpec([None, 3, test.num_frames_out, None, None], "float32", "clips")]

    def predict_files(self, model, paths, *, top_k, classes, options) -> Iterator[tuple[str, dict | str]]:
        """Each video file decoded as ``vtk decode`` does (resampled to ``options["fps"]``, the short
        side scaled to ``data.short_side``), cut into the test views, scores averaged over them."""
        from ...pipelines.ffmpeg import DecodeError, decode_clip

        sampler = self.data.sampler(train=False)
        for path in paths:
            try:
                record = decode_clip(path, fps=options.get("fps", 25.0), short_side=self.data.short_side or 0)
            except DecodeError as exc:
                yield path, exc.reason
                continue
            views = paddle.to_tensor(sampler.view_stack(record))
            scores = self.scores(self.forward(model, {"frames": views})).mean(axis=0)
            yield path, top_classes(scores, top_k, classes)
