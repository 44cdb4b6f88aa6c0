"""Synthetic YouTube-8M tfrecords in the published schemas, with features that depend on labels.

Each class has a fixed random prototype in rgb space [1024] and in audio space [128]. A video
has 1-3 labels; every frame is the sum of its labels' prototypes plus Gaussian noise, quantized
as YouTube-8M features are (the inverse of `x = q * 4/255 + 4/512 - 2`, clipped to 0..255).
With segments, a segment scored 0.0 leaves its label's prototype out of its 5 frames, so the
segment scores are learnable too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class _Video:
    """One synthetic video: quantized rgb [T, 1024] and audio [T, 128] (uint8), labels [L]."""

    id: str
    labels: np.ndarray
    rgb: np.ndarray
    audio: np.ndarray
    segments: dict[str, np.ndarray] | None


def synth_youtube8m(
    out_dir: str | os.PathLike,
    *,
    level: str = "frame",
    num_files: int = 4,
    videos_per_file: int = 32,
    num_classes: int = 20,
    min_frames: int = 30,
    max_frames: int = 120,
    segments: bool = False,
    seed: int = 0,
    prefix: str = "train",
) -> list[Path]:
    """Write `num_files` tfrecord files `{prefix}{index:04d}.tfrecord` into `out_dir`.

    `level="frame"` writes `tf.train.SequenceExample`s (context `id`, `labels`; feature lists
    `rgb` [T x 1024 bytes], `audio` [T x 128 bytes], T in [min_frames, max_frames]);
    `level="video"` writes `tf.train.Example`s (`id`, `labels`, `mean_rgb` float[1024],
    `mean_audio` float[128], the mean of the dequantized frames). `segments=True` (frame level
    only) adds the 2019 context fields `segment_start_times`, `segment_end_times`,
    `segment_labels` (int64) and `segment_scores` (float 0.0/1.0). Same arguments, same bytes;
    the same seed gives the same videos at both levels. Returns the paths written, in order.

    TensorFlow runs in a child process: loaded before Paddle in one process, it makes Paddle's
    import crash, so the calling process never imports it.
    """
    _check_arguments(level, num_classes, min_frames, max_frames, segments)
    arguments = (out_dir, level, num_files, videos_per_file, num_classes, min_frames, max_frames, segments, seed, prefix)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_write_files, *arguments).result()


def _write_files(out_dir, level, num_files, videos_per_file, num_classes, min_frames, max_frames, segments, seed,
                 prefix) -> list[Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    prototypes = (
        rng.normal(0.0, PROTOTYPE_SCALE, (num_classes, RGB_SIZE)),
        rng.normal(0.0, PROTOTYPE_SCALE, (num_classes, AUDIO_SIZE)),
    )
    ids = _video_ids(rng, num_files * videos_per_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(num_files):
        path = out / f"{prefix}{index:04d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for video_id in ids[index * videos_per_file : (index + 1) * videos_per_file]:
                num_frames = int(rng.integers(min_frames, max_frames + 1))
                video = _video(rng, video_id, num_frames, prototypes, segments)
                writer.write(_serialize(tf, video, level))
        paths.append(path)
    logger.info("wrote %d synthetic %s-level files to %s", num_files, level, out)
    return paths


def _check_arguments(
    level: str, num_classes: int, min_frames: int, max_frames: int, segments: bool
) -> None:
    """Raise ValueError for arguments that cannot make a valid dataset."""
    if level not in ("frame", "video"):
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    if segments and level != "frame":
        raise ValueError("segments exist only in frame-level data; use level='frame'")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
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
    rng: np.random.Generator,
    video_id: str,
    num_frames: int,
    prototypes: tuple[np.ndarray, np.ndarray],
    with_segments: bool,
) -> _Video:
    """A video of `num_frames` frames made from the (rgb [C, 1024], audio [C, 128]) prototypes."""
    rgb_prototypes, audio_prototypes = prototypes
    num_classes = len(rgb_prototypes)
    count = int(rng.integers(1, min(MAX_LABELS, num_classes) + 1))
    labels = np.sort(rng.choice(num_classes, size=count, replace=False))
    presence = np.ones((num_frames, count))
    segments = _segments(rng, labels, num_frames, presence) if with_segments else None
    rgb = _frame_codes(rng, presence, rgb_prototypes[labels])
    audio = _frame_codes(rng, presence, audio_prototypes[labels])
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
