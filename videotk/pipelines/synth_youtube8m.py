"""Synthetic YouTube-8M tfrecords in the published schemas, with features that depend on labels.

Each class in use has a fixed random prototype in rgb space [1024] and in audio space [128]. A
video has 1-3 labels; every frame is the sum of its labels' prototypes plus Gaussian noise,
quantized as YouTube-8M features are (the inverse of `x = q * 4/255 + 4/512 - 2`, clipped to
0..255). With segments, a segment scored 0.0 leaves its label's prototype out of its 5 frames, so
the segment scores are learnable too.

The classes in use and their prototypes come from the seed alone; the videos from the seed and the
file prefix. Files written with the same seed and another prefix are therefore new videos of the
same classes: a held-out split.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import string
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..formats.schema import dequantize_youtube8m as dequantize
from .youtube8m_records import AUDIO_SIZE, RGB_SIZE

logger = logging.getLogger(__name__)

SEGMENT_SECONDS = 5
MAX_LABELS = 3
MAX_SEGMENTS = 5
PROTOTYPE_SCALE = 0.5
NOISE_SCALE = 0.5
ID_LENGTH = 4
ID_ALPHABET = string.ascii_letters + string.digits
POLL_SECONDS = 0.2

_written = None  # in the writing child process: the queue that counts the videos written


@dataclass
class _Video:
    """One synthetic video: quantized rgb [T, 1024] and audio [T, 128] (uint8), labels [L]."""

    id: str
    labels: np.ndarray
    rgb: np.ndarray
    audio: np.ndarray
    segments: dict[str, np.ndarray] | None


@dataclass(frozen=True)
class _Spec:
    """What to write: the arguments of `synth_youtube8m`, checked."""

    out_dir: Path
    level: str
    num_files: int
    videos_per_file: int
    num_classes: int
    active_classes: int
    min_frames: int
    max_frames: int
    segments: bool
    seed: int
    prefix: str


def synth_youtube8m(
    out_dir: str | os.PathLike,
    *,
    level: str = "frame",
    num_files: int = 4,
    videos_per_file: int = 32,
    num_classes: int = 20,
    active_classes: int | None = None,
    min_frames: int = 30,
    max_frames: int = 120,
    segments: bool = False,
    seed: int = 0,
    prefix: str = "train",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write `num_files` tfrecord files `{prefix}{index:04d}.tfrecord` into `out_dir`.

    `level="frame"` writes `tf.train.SequenceExample`s (context `id`, `labels`; feature lists
    `rgb` [T x 1024 bytes], `audio` [T x 128 bytes], T in [min_frames, max_frames]);
    `level="video"` writes `tf.train.Example`s (`id`, `labels`, `mean_rgb` float[1024],
    `mean_audio` float[128], the mean of the dequantized frames). `segments=True` (frame level
    only) adds the 2019 context fields `segment_start_times`, `segment_end_times`,
    `segment_labels` (int64) and `segment_scores` (float 0.0/1.0).

    Labels are class ids in 0..num_classes-1. `active_classes` (default: all) draws them from
    only that many ids, spread at random over the whole range and fixed by `seed`, e.g. 16 of
    YouTube-8M's 3862 classes. Same arguments, same bytes; the same seed gives the same videos
    at both levels, and with another `prefix` other videos of the same classes (a held-out
    split). `progress(videos_written, total)` is called as the files fill. Returns the paths
    written, in order.

    TensorFlow runs in a child process: loaded before Paddle in one process, it makes Paddle's
    import crash, so the calling process never imports it.
    """
    active = num_classes if active_classes is None else active_classes
    _check_arguments(level, num_classes, active, min_frames, max_frames, segments)
    spec = _Spec(Path(out_dir), level, num_files, videos_per_file, num_classes, active, min_frames, max_frames,
                 segments, seed, prefix)
    context = multiprocessing.get_context("spawn")
    written = context.Queue()
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_count_into,
                             initargs=(written,)) as pool:
        future = pool.submit(_write_files, spec)
        _follow(future, written, num_files * videos_per_file, progress)
        return future.result()


def _count_into(written) -> None:
    """In the child process: count every video written into the queue `written`."""
    global _written
    _written = written


def _follow(future: Future, written, total: int, progress: Callable[[int, int], None] | None) -> None:
    """Read the child's counts from `written` and pass them on to `progress` until all `total`
    videos are counted or `future` is done with nothing left to read.

    The queue is read even without `progress`, so the child never blocks on a full pipe.
    """
    done = 0
    while done < total and not (future.done() and written.empty()):
        try:
            done += written.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if progress is not None:
            progress(done, total)
    if progress is not None and done < total and future.exception() is None:
        progress(total, total)


def _write_files(spec: _Spec) -> list[Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    classes = _classes(np.random.default_rng(spec.seed), spec.num_classes, spec.active_classes)
    rng = np.random.default_rng([spec.seed, zlib.crc32(spec.prefix.encode())])
    ids = _video_ids(rng, spec.num_files * spec.videos_per_file)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(spec.num_files):
        path = spec.out_dir / f"{spec.prefix}{index:04d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for video_id in ids[index * spec.videos_per_file : (index + 1) * spec.videos_per_file]:
                num_frames = int(rng.integers(spec.min_frames, spec.max_frames + 1))
                writer.write(_serialize(tf, _video(rng, video_id, num_frames, classes, spec.segments), spec.level))
                _written.put(1)
        paths.append(path)
    logger.info("wrote %d synthetic %s-level files to %s", spec.num_files, spec.level, spec.out_dir)
    return paths


@dataclass
class _Classes:
    """The classes in use: sorted ids [C] and their prototypes, rgb [C, 1024] and audio [C, 128]."""

    ids: np.ndarray
    rgb: np.ndarray
    audio: np.ndarray


def _classes(rng: np.random.Generator, num_classes: int, active: int) -> _Classes:
    """`active` class ids out of `num_classes` (all of them when equal) and their prototypes."""
    rgb = rng.normal(0.0, PROTOTYPE_SCALE, (active, RGB_SIZE))
    audio = rng.normal(0.0, PROTOTYPE_SCALE, (active, AUDIO_SIZE))
    ids = np.arange(num_classes) if active == num_classes else np.sort(rng.choice(num_classes, active, replace=False))
    return _Classes(ids, rgb, audio)


def _check_arguments(
    level: str, num_classes: int, active: int, min_frames: int, max_frames: int, segments: bool
) -> None:
    """Raise ValueError for arguments that cannot make a valid dataset."""
    if level not in ("frame", "video"):
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    if segments and level != "frame":
        raise ValueError("segments exist only in frame-level data: give level 'frame' (--level frame)")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if not 1 <= active <= num_classes:
        raise ValueError(f"active_classes must be in [1, num_classes = {num_classes}], got {active}")
    lowest = SEGMENT_SECONDS if segments else 1
    if not lowest <= min_frames <= max_frames:
        raise ValueError(
            f"need {lowest} <= min_frames <= max_frames, got {min_frames} and {max_frames}"
        )


def _video_ids(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct random ids of 4 alphanumeric characters."""
    alphabet = len(ID_ALPHABET)
    numbers = rng.choice(alphabet**ID_LENGTH, size=count, replace=False)
    digits = numbers[:, None] // alphabet ** np.arange(ID_LENGTH) % alphabet
    return ["".join(ID_ALPHABET[d] for d in row) for row in digits]


def _video(
    rng: np.random.Generator, video_id: str, num_frames: int, classes: _Classes, with_segments: bool
) -> _Video:
    """A video of `num_frames` frames with 1-3 of the `classes`, made from their prototypes."""
    count = int(rng.integers(1, min(MAX_LABELS, len(classes.ids)) + 1))
    chosen = np.sort(rng.choice(len(classes.ids), size=count, replace=False))
    labels = classes.ids[chosen]
    presence = np.ones((num_frames, count))
    segments = _segments(rng, labels, num_frames, presence) if with_segments else None
    rgb = _frame_codes(rng, presence, classes.rgb[chosen])
    audio = _frame_codes(rng, presence, classes.audio[chosen])
    return _Video(video_id, labels, rgb, audio, segments)


def _frame_codes(
    rng: np.random.Generator, presence: np.ndarray, prototypes: np.ndarray
) -> np.ndarray:
    """uint8 [T, D]: each frame the sum of the prototypes [L, D] present in it (`presence`
    [T, L] of 0/1), plus Gaussian noise, quantized."""
    noise = rng.normal(0.0, NOISE_SCALE, (len(presence), prototypes.shape[1]))
    return quantize(presence @ prototypes + noise)


def _segments(
    rng: np.random.Generator, labels: np.ndarray, num_frames: int, presence: np.ndarray
) -> dict[str, np.ndarray]:
    """Up to 5 labelled 5-second segments [S]; clears `presence` [T, L] where a score is 0."""
    slots = num_frames // SEGMENT_SECONDS
    count = int(rng.integers(1, min(MAX_SEGMENTS, slots) + 1))
    starts = np.sort(rng.choice(slots, size=count, replace=False)) * SEGMENT_SECONDS
    which = rng.integers(0, len(labels), size=count)
    scores = rng.integers(0, 2, size=count).astype(np.float32)
    for start, column, score in zip(starts, which, scores):
        presence[start : start + SEGMENT_SECONDS, column] = score
    return {
        "segment_start_times": starts,
        "segment_end_times": starts + SEGMENT_SECONDS,
        "segment_labels": labels[which],
        "segment_scores": scores,
    }


def quantize(features: np.ndarray) -> np.ndarray:
    """uint8 codes q of float features x, inverting x = q * 4/255 + 4/512 - 2 (any shape)."""
    codes = np.rint((features - 4.0 / 512.0 + 2.0) * (255.0 / 4.0))
    return np.clip(codes, 0, 255).astype(np.uint8)


def _serialize(tf, video: _Video, level: str) -> bytes:
    """The serialized SequenceExample (frame level) or Example (video level) of `video`."""
    context = {
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video.id.encode()])),
        "labels": _int64_feature(tf, video.labels),
    }
    if level == "video":
        context["mean_rgb"] = _float_feature(tf, dequantize(video.rgb).mean(axis=0))
        context["mean_audio"] = _float_feature(tf, dequantize(video.audio).mean(axis=0))
        example = tf.train.Example(features=tf.train.Features(feature=context))
        return example.SerializeToString(deterministic=True)
    for key, values in (video.segments or {}).items():
        is_score = key == "segment_scores"
        context[key] = _float_feature(tf, values) if is_score else _int64_feature(tf, values)
    feature_lists = {"rgb": _frames(tf, video.rgb), "audio": _frames(tf, video.audio)}
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=feature_lists),
    )
    return example.SerializeToString(deterministic=True)


def _float_feature(tf, values: np.ndarray):
    """A tf.train.Feature holding float32 `values` [N]."""
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.astype(np.float32).tolist()))


def _int64_feature(tf, values: np.ndarray):
    """A tf.train.Feature holding int64 `values` [N]."""
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))


def _frames(tf, codes: np.ndarray):
    """A tf.train.FeatureList with one bytes feature per row of uint8 `codes` [T, D]."""
    features = [
        tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()])) for row in codes
    ]
    return tf.train.FeatureList(feature=features)
