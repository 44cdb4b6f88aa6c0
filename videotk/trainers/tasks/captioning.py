"""Captioning of ground-truth segments of ActivityNet Captions with ETS.

The cache is an ``anet_captions`` cache (``vtk convert anet-captions``): one record per video with
``id``, ``subset`` (``train``, ``val``, ``test``), ``features`` float32 ``[T, D]`` at the manifest's
``fps`` (5), ``segments`` ``[K, 2]`` (seconds), ``reference`` ``[K]`` (1: train.json or val_1.json,
2: val_2.json), ``sentences``, ``caption_ids`` and ``caption_lengths``; the manifest's ``classes``
is the vocabulary (word id = position: ``<s>``, ``<e>``, ``<unk>``, then the words).

One sample is one event (a segment and its caption), a dict of numpy arrays:

=============  ====================  ==========================================================
key            dtype, shape          content
=============  ====================  ==========================================================
``features``   float32 ``[T, D]``    the video's frames ``int(start * fps) : int(end * fps + 0.5)``
                                     (the seed's slice; an event whose slice is empty is skipped)
``frames``     int64 ``[]``          ``T``; a batch pads ``features`` to its longest and the model
                                     gets the mask of the real frames
``words``      int64 ``[L + 1]``     ``<s>`` then the caption's word ids (teacher forcing)
``targets``    int64 ``[L + 1]``     the word ids then ``<e>``
``length``     int64 ``[]``          ``L + 1``; padded tokens are left out of the loss
``index``      int64 ``[]``          the record's index in the cache
``event``      int64 ``[]``          the event's position in the record
=============  ====================  ==========================================================

Training reads every event of the videos of ``data.train_subsets``, with no length cap (as the
seed). Evaluation and prediction caption the events of reference set ``eval.reference`` (1: the
val_1 segments, the seed's "ground-truth proposals" setting) of the videos of
``data.eval_subsets``, by beam search (``eval.decoding: beam``, 3 wide, up to 80 words) or greedy
decoding, and score them with :class:`~videotk.evaluators.captioning.CaptioningEvaluator` against
every reference set of each video (val_1 and val_2); a video without a captioned event scores 0.
``vtk predict ets`` writes ActivityNet Captions' result file. The decoders are Python loops over
steps, which ``paddle.jit.save`` does not capture: ETS is not exported.

Batches of records of different lengths are padded per batch (:func:`padded_loader`), which the
grounding task uses too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import paddle

from ...formats import Cache, CacheError
from ..loader import Loader, SampleFailure, collate, make_loader
from ..sections import EvalSettings
from ..settings import ConfigError, Count, PositiveFloat, PositiveInt
from .activitynet import SubsetVideos
from .base import Task, as_numpy, register_task

KIND = "anet_captions"
HINT = "convert ActivityNet Captions frame features and captions with `vtk convert anet-captions`"
SUBSETS = ("train", "val", "test")
FPS = 5.0
#: the feature files ``predict_files`` reads, as ``vtk convert anet-captions`` does ("": a legacy pickle)
FEATURE_SUFFIXES = (".npy", ".h5", ".hdf5", ".pkl", ".pickle", "")
BOS, EOS = 0, 1
RESULT_VERSION = "VERSION 1.0"


# -- batches of samples of different lengths -----------------------------------------------------


def pad_collate(samples: list) -> dict:
    """Samples stacked into a batch of numpy arrays, each array key zero-padded to the largest shape
    among them (lengths are the samples' own keys); a reader's failure passes as :func:`collate`
    passes it."""
    if any(isinstance(s, SampleFailure) for s in samples):
        return collate(samples)
    batch = {}
    for key in samples[0]:
        arrays = [np.asarray(s[key]) for s in samples]
        shape = np.max([a.shape for a in arrays], axis=0) if arrays[0].ndim else ()
        out = np.zeros((len(arrays), *shape), arrays[0].dtype)
        for row, a in enumerate(arrays):
            out[(row, *(slice(0, n) for n in a.shape))] = a
        batch[key] = out
    return batch


def padded_loader(dataset, *, batch_size: int, num_workers: int) -> Loader:
    """:func:`~videotk.trainers.loader.make_loader` with :func:`pad_collate` (run in the workers)."""
    return make_loader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=pad_collate)


def length_mask(lengths: paddle.Tensor, size: int) -> paddle.Tensor:
    """float32 ``[N, size]``: 1 at positions below each of ``lengths`` ``[N]``."""
    return (paddle.arange(size, dtype="int64").unsqueeze(0) < lengths.reshape([-1, 1])).astype("float32")


class CountedRecords(SubsetVideos):
    """Samples of a cache whose record ``i`` makes ``counts[i]`` of them (0: the record is skipped);
    the loader's step count stays exact (:class:`~videotk.trainers.tasks.activitynet.SubsetVideos`
    sums ``kept`` over each reader's records, which here holds the counts)."""

    def __init__(self, cache: Cache, *, counts: np.ndarray, train: bool, shuffle_buffer: int, seed: int):
        super().__init__(cache, subsets=(), train=train, shuffle_buffer=shuffle_buffer, seed=seed)
        self.kept = np.asarray(counts, np.int64)

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        if self.kept[index]:
            yield from self.record_samples(index, record, rng)

    def record_samples(self, index: int, record: dict, rng: np.random.Generator | None) -> Iterator[dict]:
        raise NotImplementedError


# -- the cache's videos and events ---------------------------------------------------------------


@dataclass(frozen=True)
class Video:
    """What evaluation needs of one record: its events (seconds), their reference sets and sentences."""

    id: str
    subset: str
    num_frames: int
    segments: np.ndarray
    reference: np.ndarray
    sentences: tuple[str, ...]

    def references(self) -> list[tuple[np.ndarray, tuple[str, ...]]]:
        """One ``(timestamps [R, 2], R sentences)`` per reference set of the video, set 1 first."""
        return [(self.segments[self.reference == r], tuple(np.asarray(self.sentences, object)[self.reference == r]))
                for r in sorted(set(self.reference.tolist()))]


def cache_videos(cache: Cache) -> list[Video]:
    """Every record's :class:`Video`, in record order (reads no features)."""
    columns = [cache.column(name) for name in ("id", "subset", "num_frames", "segments", "reference", "sentences")]
    return [Video(str(i), str(s), int(t), np.asarray(seg, np.float64).reshape(-1, 2), np.asarray(ref, np.int64),
                  tuple(sent)) for i, s, t, seg, ref, sent in zip(*columns)]


def frame_span(start: float, end: float, fps: float, num_frames: int) -> tuple[int, int]:
    """The frames ``first .. stop - 1`` of a segment in seconds: ``int(start * fps) : int(end * fps + 0.5)``
    (the seed's slice), within the ``num_frames`` frames."""
    first = max(int(start * fps), 0)
    return first, max(min(int(end * fps + 0.5), num_frames), first)


def captioned_events(video: Video, fps: float, reference: int | None) -> np.ndarray:
    """Positions of the events of ``video`` (of ``reference`` only, unless None) whose frames are not empty."""
    keep = []
    for k, (start, end) in enumerate(video.segments):
        first, stop = frame_span(start, end, fps, video.num_frames)
        if stop > first and (reference is None or video.reference[k] == reference):
            keep.append(k)
    return np.array(keep, np.int64)


def caption_text(ids: list[int], words: list[str]) -> str:
    """The words of generated ``ids`` (after ``<s>``, up to ``<e>``), joined by spaces."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(words[i] if 0 <= i < len(words) else "<unk>")
    return " ".join(out)


class EventSamples(CountedRecords):
    """ETS's samples (module docstring): the events ``events[i]`` of record ``i``."""

    def __init__(self, cache: Cache, *, events: list[np.ndarray], fps: float, **kwargs):
        super().__init__(cache, counts=np.array([len(e) for e in events], np.int64), **kwargs)
        self.events, self.fps = events, fps

    def record_samples(self, index: int, record: dict, rng: np.random.Generator | None) -> Iterator[dict]:
        features = np.asarray(record["features"], np.float32)
        segments = np.asarray(record["segments"], np.float64).reshape(-1, 2)
        lengths = np.asarray(record["caption_lengths"], np.int64)
        ids = np.asarray(record["caption_ids"], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for event in self.events[index]:
            first, stop = frame_span(*segments[event], self.fps, len(features))
            words = ids[starts[event]: starts[event + 1]]
            yield {"features": features[first:stop], "frames": np.array(stop - first, np.int64),
                   "words": np.concatenate([[BOS], words]).astype(np.int64),
                   "targets": np.concatenate([words, [EOS]]).astype(np.int64),
                   "length": np.array(len(words) + 1, np.int64), "index": np.array(index, np.int64),
                   "event": np.array(event, np.int64)}


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptionData:
    """The ``data`` section: the subsets trained on and those evaluated and predicted, the shuffle
    buffer (videos), and the frame rate of raw feature files given to ``vtk predict --features``
    (a cache records its own)."""

    train_subsets: tuple[str, ...] = ("train",)
    eval_subsets: tuple[str, ...] = ("val",)
    shuffle_buffer: Count = 64
    fps: PositiveFloat = FPS


@dataclass(frozen=True)
class CaptionEval(EvalSettings):
    """The ``eval`` section: ``decoding`` ``beam`` (``beam_size`` wide, the seed's 3) or ``greedy``,
    at most ``max_length`` words (80); the reference set whose segments are captioned (1: val_1);
    the metric's tIoU thresholds; ``java``: null uses Java (METEOR 1.5, the PTB tokenizer) when it
    is on PATH, false never does."""

    decoding: Literal["beam", "greedy"] = "beam"
    beam_size: PositiveInt = 3
    max_length: PositiveInt = 80
    reference: PositiveInt = 1
    tious: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    java: bool | None = None


class CaptionScores:
    """The captioning metric fed one event at a time; ``summary()`` first adds every evaluated
    video without a captioned event (it scores 0, as in the ActivityNet Captions evaluator)."""

    def __init__(self, metric, videos: Callable[[], list[Video]]) -> None:
        self.metric, self.videos = metric, videos

    def summary(self) -> dict:
        for video in self.videos():
            self.metric.update(video.id, np.zeros((0, 2)), [], video.references())
        return self.metric.summary()

    def reset(self) -> None:
        self.metric.reset()


def check_subsets(subsets: tuple[str, ...], where: str) -> None:
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise ConfigError(f"config key {where}: unknown subset {unknown[0]!r}; ActivityNet Captions caches have "
                          f"{', '.join(SUBSETS)}")


def vocabulary_problem(cache: Cache) -> str | None:
    """Why the manifest's vocabulary cannot be used (missing, or not the words its digest names), or None."""
    entry = (cache.manifest.get("options") or {}).get("vocabulary")
    words = cache.classes
    if not words or not isinstance(entry, dict):
        return "has no vocabulary in its manifest"
    digest = hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()
    if entry.get("sha256") != digest or entry.get("size") != len(words):
        return f"its vocabulary ({len(words)} words) does not match its record {entry}"
    return None


# -- the task ------------------------------------------------------------------------------------


@register_task
class ETSTask(Task):
    """ETS: inputs ``features [N, T, D]``, ``mask [N, T]``, ``words [N, L]``; outputs the logits
    ``[N, L, V]`` of the next word (training), or generated word ids (evaluation, prediction)."""

    name = "captioning"
    cache_kinds = (KIND,)
    cache_hint = HINT
    Data = CaptionData
    Eval = CaptionEval
    raw_inputs = "feature files"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.videos: list[Video] = []
        self.words: list[str] = []

    @classmethod
    def check_config(cls, config) -> None:
        check_subsets(config.data.train_subsets, "data.train_subsets")
        check_subsets(config.data.eval_subsets, "data.eval_subsets")

    @property
    def vocab_size(self) -> int:
        return self.config.model.get("vocab_size")

    @property
    def feature_dim(self) -> int:
        return self.config.model.get("feature_dim", 2048)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        problem = vocabulary_problem(cache)
        if problem:
            raise CacheError(f"{cache.path}: {problem}; convert again with `vtk convert anet-captions`")
        if len(cache.classes) != self.vocab_size:
            raise CacheError(f"{cache.path}: a vocabulary of {len(cache.classes)} words, but model.vocab_size is "
                             f"{self.vocab_size}; set -o model.vocab_size={len(cache.classes)}")
        width = {c.name: c for c in cache.columns}["features"].codec.dims[-1]
        if width not in (None, self.feature_dim):
            raise CacheError(f"{cache.path}: features of dimension {width}, but model.feature_dim is "
                             f"{self.feature_dim}; set -o model.feature_dim={width}")
        if not any(len(self.eval_events(v, self.cache_fps(cache))) for v in cache_videos(cache)):
            raise CacheError(f"{cache.path}: no video of the subsets {', '.join(self.data.eval_subsets)} has an event "
                             f"of reference set {self.config.eval.reference}; set -o data.eval_subsets=[...] or "
                             "-o eval.reference=N")
        self.words = list(cache.classes)

    @staticmethod
    def cache_fps(cache: Cache) -> float:
        return float((cache.manifest.get("options") or {}).get("fps", FPS))

    def eval_events(self, video: Video, fps: float) -> np.ndarray:
        if video.subset not in self.data.eval_subsets:
            return np.zeros(0, np.int64)
        return captioned_events(video, fps, self.config.eval.reference)

    def dataset(self, cache: Cache, *, train: bool) -> EventSamples:
        fps, videos = self.cache_fps(cache), cache_videos(cache)
        if train:
            events = [captioned_events(v, fps, None) if v.subset in self.data.train_subsets else np.zeros(0, np.int64)
                      for v in videos]
        else:
            self.videos, self.words = videos, list(cache.classes)
            events = [self.eval_events(v, fps) for v in videos]
        return EventSamples(cache, events=events, fps=fps, train=train, shuffle_buffer=self.data.shuffle_buffer,
                            seed=self.config.train.seed)

    def loader(self, cache: Cache, *, batch_size: int, num_workers: int, train: bool, epoch: int = 0) -> Loader:
        dataset = self.dataset(cache, train=train)
        dataset.set_epoch(epoch)
        if train and not dataset.kept.sum():
            raise CacheError(f"{cache.path}: no event of the subsets {', '.join(self.data.train_subsets)} to train "
                             "on; set -o data.train_subsets=[...]")
        return padded_loader(dataset, batch_size=batch_size, num_workers=num_workers)

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        features = batch["features"]
        return [features, length_mask(batch["frames"], features.shape[1]), batch["words"]]

    def loss(self, logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        from ...models.ets import caption_loss

        return caption_loss(logits, batch["targets"], length_mask(batch["length"], logits.shape[1]))

    def decode(self, model, batch: dict) -> list[list[int]]:
        """Generated word ids per event of ``batch`` (``eval.decoding``)."""
        from ..runtime import unwrapped

        layer, settings = unwrapped(model), self.config.eval
        features = batch["features"]
        mask = length_mask(batch["frames"], features.shape[1])
        if settings.decoding == "greedy":
            return layer.greedy(features, mask, max_length=settings.max_length)
        return layer.beam_search(features, mask, beam=settings.beam_size, max_length=settings.max_length)

    def evaluate_batch(self, model, batch: dict):
        loss = float(self.loss(self.forward(model, batch), batch))
        return self.decode(model, batch), loss

    def predict_batch(self, model, batch: dict):
        return self.decode(model, batch)

    def evaluator(self):
        from ...evaluators.captioning import CaptioningEvaluator

        metric = CaptioningEvaluator(tious=self.config.eval.tious, seed=self.config.train.seed,
                                     java=self.config.eval.java)
        return CaptionScores(metric, self.evaluated_videos)

    def evaluated_videos(self) -> list[Video]:
        """The annotated videos of the evaluated subsets of the cache last read for evaluation."""
        return [v for v in self.videos if v.subset in self.data.eval_subsets and len(v.segments)]

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        for ids, index, event in zip(outputs, as_numpy(batch["index"]).tolist(), as_numpy(batch["event"]).tolist()):
            video = self.videos[index]
            evaluator.metric.update(video.id, video.segments[event: event + 1], [caption_text(ids, self.words)],
                                    video.references(), loss=loss)

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        words = classes or cache.classes
        found: dict[int, dict[int, str]] = {}
        for outputs, batch in results:
            for ids, index, event in zip(outputs, as_numpy(batch["index"]).tolist(),
                                         as_numpy(batch["event"]).tolist()):
                found.setdefault(index, {})[event] = caption_text(ids, words)
        for index, captions in found.items():
            video = self.videos[index]
            yield {"id": video.id, "results": [
                {"sentence": captions[k], "timestamp": [round(float(s), 2) for s in video.segments[k]]}
                for k in sorted(captions)]}

    def write_predictions(self, records, file) -> int:
        """ActivityNet Captions' result file: ``{"version", "results": {video id: [{"sentence",
        "timestamp": [start, end]}]}, "external_data"}`` (ids as in the cache, without ``v_``)."""
        results = {record["id"]: record["results"] for record in records}
        json.dump({"version": RESULT_VERSION, "results": results,
                   "external_data": {"used": True, "details": "frame features of a network pretrained elsewhere "
                                                              "(ResNet-152 on ImageNet in the seed)"}}, file)
        file.write("\n")
        return len(results)

    def record_line(self, record: dict) -> str:
        return "; ".join(f"{r['timestamp'][0]:.1f}-{r['timestamp'][1]:.1f} s: {r['sentence']}" for r in record["results"])

    def input_spec(self) -> list[paddle.static.InputSpec]:
        raise CacheError(f"{self.config.model.name} cannot be exported: its captions come from beam search or greedy "
                         "decoding, a loop over words that paddle.jit.save does not capture; predict with the "
                         "checkpoint (vtk predict --weights CHECKPOINT)")

    def predict_files(self, model, paths, *, top_k, classes, options) -> Iterator[tuple[str, dict | str]]:
        """Each feature file (``[T, D]`` at ``data.fps``: ``.npy``, ``.h5``, a pickle, as ``vtk convert
        anet-captions`` reads them) captioned over ``options["segment"]`` (seconds), or whole."""
        from ...pipelines.anet_captions import FeatureFileError, read_features

        if not classes:
            raise CacheError("the weights have no vocabulary saved with them (classes.json of the training cache); "
                             "predict with a checkpoint folder of vtk train")
        for path in paths:
            if Path(path).suffix.lower() not in FEATURE_SUFFIXES:
                yield path, (f"not a feature file: expected {', '.join(s for s in FEATURE_SUFFIXES if s)} or an "
                             "extension-less legacy pickle")
                continue
            try:
                features = read_features(path, Path(path).stem)
            except FeatureFileError as exc:
                yield path, exc.reason.replace(f"{path}: ", "")
                continue
            yield path, self.file_caption(model, features, options.get("segment"), classes)

    def file_caption(self, model, features: np.ndarray, segment, words: list[str]) -> dict | str:
        """The record of one file's segment, or why it has none."""
        if features.shape[1] != self.feature_dim:
            return f"features of dimension {features.shape[1]}, but the model reads {self.feature_dim}"
        start, end = segment if segment else (0.0, len(features) / self.data.fps)
        first, stop = frame_span(start, end, self.data.fps, len(features))
        if stop <= first:
            return (f"segment {start:g}-{end:g} s holds no frame of the {len(features)} at {self.data.fps:g} fps "
                    f"({len(features) / self.data.fps:.1f} s)")
        batch = {"features": paddle.to_tensor(features[None, first:stop].astype(np.float32)),
                 "frames": paddle.to_tensor(np.array([stop - first], np.int64))}
        ids = self.decode(model, batch)[0]
        return {"results": [{"sentence": caption_text(ids, words), "timestamp": [round(start, 2), round(end, 2)]}]}
