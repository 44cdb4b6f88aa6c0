"""Clips from records of decoded frames: which frames to take, and how they become tensors.

A record holds a video's frames (``num_frames``, ``height``, ``width`` and ``frames``: one JPEG per
frame or one raw ``[T, H, W, 3]`` uint8 buffer), as ``vtk decode`` stores them. A
:class:`ClipSampler` turns it into one training clip or into the test views:

- mode ``"tsn"``: ``seg_num`` segments of ``seglen`` frames, ``T = seg_num * seglen`` (TSN, TSM,
  StNet);
- mode ``"dense"``: ``num_frames_out`` frames ``sample_rate`` apart, ``T = num_frames_out``
  (Non-local);

as uint8 RGB frames ``[T, S, S, 3]``, ``S = crop_size``: what a data worker hands over, a
quarter of the bytes of float32. :meth:`ClipSampler.tensor` makes the model's float32 input of a
clip, ``[T, 3, S, S]`` (``"tsn"``) or ``[3, T, S, S]`` (``"dense"``), each frame ``(x / 255 - mean)
/ std`` with ImageNet's RGB mean and std; the Kinetics task does the same to a batch on the device.

Only the sampled frames are decoded: one JPEG each with OpenCV (libjpeg-turbo: within 10 % of
simplejpeg, faster than Pillow, and OpenCV also does the resizing), or a slice of the raw buffer.

Training: frames sampled at random (:func:`segment_indices`, :func:`dense_indices`), the short
side scaled to ``short_side`` (or to a random size in ``scale_jitter``), a random crop (or the
multi-scale crop of TSM), a random horizontal flip.

Evaluation: ``short_side`` scaling and ``test_views`` views per video:

- ``1``: the centred clip (centred segments), centre crop.
- ``"3crop"``: the centred clip, three crops along the long side.
- ``"10clip"``: 10 clips spread evenly over the video, centre crop.
- ``"30view"``: the 10 clips x 3 crops of Non-local testing, ``view = 3 * clip + crop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import cv2
import numpy as np

from .settings import PositiveInt
from .transforms import (
    center_crop,
    horizontal_flip,
    multi_scale_crop,
    normalize,
    random_crop,
    random_scaled_crop,
    short_side_scale,
    three_crop,
)

MODES = ("tsn", "dense")
TEST_VIEWS = {1: (1, 1), "3crop": (1, 3), "10clip": (10, 1), "30view": (10, 3)}  # (clips, crops)


def segment_indices(
    num_frames: int,
    seg_num: int,
    seglen: int = 1,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
    clip_index: int | None = None,
    num_clips: int = 10,
) -> np.ndarray:
    """Frame indices int64 ``[seg_num * seglen]`` of TSN segment sampling, segment by segment.

    The video is cut into ``seg_num`` segments of ``d = num_frames // seg_num`` frames (the last
    ``num_frames % seg_num`` frames belong to none), and ``seglen`` consecutive frames are taken
    from each, starting ``o`` frames into the segment: ``o`` uniform in ``0 .. d - seglen`` in
    training (one draw per segment), the centre ``(d - seglen) // 2`` in testing, or with
    ``clip_index`` ``k`` of ``num_clips`` the offset ``(2k + 1) * (d - seglen) // (2 * num_clips)``.

    Short videos as in the seed: when ``seglen > d >= 1`` every segment starts at its first frame,
    when ``d == 0`` (fewer frames than segments) segment ``i`` starts at frame ``i``; indices past
    the end wrap around to the start (``index % num_frames``).
    """
    _check_counts(num_frames=num_frames, seg_num=seg_num, seglen=seglen)
    duration = num_frames // seg_num
    starts = np.arange(seg_num) * duration if duration else np.arange(seg_num)
    if duration >= seglen:
        slack = duration - seglen
        if train:
            starts += _training_rng(rng).integers(0, slack + 1, seg_num)
        else:
            starts += spread_start(slack, clip_index, num_clips)
    return ((starts[:, None] + np.arange(seglen)) % num_frames).ravel()


def dense_indices(
    num_frames: int,
    num_frames_out: int = 8,
    sample_rate: int = 8,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
    clip_index: int | None = None,
    num_clips: int = 10,
) -> np.ndarray:
    """Frame indices int64 ``[num_frames_out]`` of Non-local dense sampling: ``num_frames_out``
    frames ``sample_rate`` apart, a window of ``w = (num_frames_out - 1) * sample_rate + 1`` frames.

    The window starts uniformly at random in ``0 .. num_frames - w`` in training, at the centre
    ``(num_frames - w) // 2`` in testing, or with ``clip_index`` ``k`` of ``num_clips`` windows
    spread evenly at ``(2k + 1) * (num_frames - w) // (2 * num_clips)``. A video shorter than the
    window starts at frame 0 and loops (``index % num_frames``), as in the seed. (The seed counted
    the window as ``num_frames_out * sample_rate`` frames, and started test clip ``k`` at
    ``k * num_frames / num_clips``, wrapping the last clips around the end of the video; here test
    clips stay inside the video.)
    """
    _check_counts(num_frames=num_frames, num_frames_out=num_frames_out, sample_rate=sample_rate)
    slack = max(num_frames - (num_frames_out - 1) * sample_rate - 1, 0)
    if train:
        start = _training_rng(rng).integers(0, slack + 1)
    else:
        start = spread_start(slack, clip_index, num_clips)
    return (start + sample_rate * np.arange(num_frames_out)) % num_frames


def spread_start(slack: int, clip_index: int | None, num_clips: int) -> int:
    """Start of test clip ``clip_index`` of ``num_clips`` in ``0 .. slack``: the middle of its
    ``1 / num_clips`` share, ``(2k + 1) * slack // (2 * num_clips)``; ``None``: the centre."""
    if clip_index is None:
        return slack // 2
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} is outside 0..{num_clips - 1}")
    return (2 * clip_index + 1) * slack // (2 * num_clips)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def _training_rng(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        raise ValueError("training samples at random: pass rng, a numpy.random.Generator")
    return rng


def decode_frames(record: dict, indices: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[len(indices), H, W, 3]``: frames ``indices`` of a Kinetics record.

    ``record`` has the cache's keys ``num_frames``, ``height``, ``width`` and ``frames`` (a list
    of JPEGs, or one raw ``[T, H, W, 3]`` buffer) and optionally ``id``, used in errors. Each
    distinct frame is decoded once; other frames are not touched.
    """
    indices = np.asarray(indices, np.int64)
    num_frames = record["num_frames"]
    if indices.size and not (0 <= indices.min() and indices.max() < num_frames):
        raise IndexError(f"video {record.get('id')!r}: frame indices outside 0..{num_frames - 1}")
    if isinstance(record["frames"], (bytes, bytearray, memoryview)):
        return _raw_frames(record)[indices]
    wanted, where = np.unique(indices, return_inverse=True)
    frames = _jpeg_frames(record, wanted)
    return frames if np.array_equal(wanted, indices) else frames[where]


def _raw_frames(record: dict) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` view of a raw record's buffer."""
    shape = (record["num_frames"], record["height"], record["width"], 3)
    buffer = record["frames"]
    if len(buffer) != np.prod(shape):
        raise ValueError(
            f"video {record.get('id')!r}: raw frames hold {len(buffer)} bytes, not {' x '.join(map(str, shape))}"
        )
    return np.frombuffer(buffer, np.uint8).reshape(shape)


def _jpeg_frames(record: dict, indices: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[len(indices), H, W, 3]``: the JPEGs ``indices`` of a record, decoded."""
    jpegs, height, width = record["frames"], record["height"], record["width"]
    if len(jpegs) != record["num_frames"]:
        raise ValueError(
            f"video {record.get('id')!r}: {len(jpegs)} JPEG frames, but num_frames is {record['num_frames']}"
        )
    out = np.empty((len(indices), height, width, 3), np.uint8)
    for target, index in zip(out, indices.tolist()):
        image = cv2.imdecode(np.frombuffer(jpegs[index], np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.shape != target.shape:
            found = "not a JPEG" if image is None else f"{image.shape[1]}x{image.shape[0]}"
            raise ValueError(f"video {record.get('id')!r}: frame {index} is {found}, expected a {width}x{height} JPEG")
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=target)
    return out


@dataclass(frozen=True)
class ClipSampler:
    """How a record becomes a training clip or test views (shapes in the module docstring).

    - ``short_side``: the scale before cropping; ``None`` keeps the cache's, and frames already
      of that size are not resized. ``scale_jitter=(low, high)``: in training, a short side drawn
      uniformly from ``low .. high`` per clip instead (Non-local: ``(256, 320)``).
    - ``multi_scale``: in training, TSM's multi-scale crop instead of a random crop.
    - ``flip``: the random horizontal flip of training; turn it off when classes differ by the
      direction of motion (a flipped "moving left" clip shows "moving right").
    """

    mode: Literal["tsn", "dense"] = "tsn"
    seg_num: PositiveInt = 8
    seglen: PositiveInt = 1
    num_frames_out: PositiveInt = 8
    sample_rate: PositiveInt = 8
    short_side: PositiveInt | None = 256
    scale_jitter: tuple[PositiveInt, PositiveInt] | None = None
    crop_size: PositiveInt = 224
    multi_scale: bool = False
    test_views: Literal[1, "3crop", "10clip", "30view"] = 1
    flip: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        if self.test_views not in TEST_VIEWS:
            raise ValueError(f"unknown test_views {self.test_views!r}; expected one of {list(TEST_VIEWS)}")
        _check_counts(seg_num=self.seg_num, seglen=self.seglen, num_frames_out=self.num_frames_out,
                      sample_rate=self.sample_rate, crop_size=self.crop_size)
        if self.short_side is not None and self.short_side < self.crop_size:
            raise ValueError(f"short_side {self.short_side} is smaller than crop_size {self.crop_size}")
        if self.scale_jitter is not None and not self.crop_size <= self.scale_jitter[0] <= self.scale_jitter[1]:
            raise ValueError(f"scale_jitter {self.scale_jitter} must be (low, high) with crop_size <= low <= high")

    @property
    def num_views(self) -> int:
        """Samples per video in evaluation."""
        clips, crops = TEST_VIEWS[self.test_views]
        return clips * crops

    def indices(
        self,
        num_frames: int,
        rng: np.random.Generator | None = None,
        clip_index: int | None = None,
        num_clips: int = 10,
    ) -> np.ndarray:
        """The frames of one clip: at random with ``rng``, else test clip ``clip_index``
        (``None``: the centred one) of ``num_clips``."""
        position = {"train": rng is not None, "rng": rng, "clip_index": clip_index, "num_clips": num_clips}
        if self.mode == "tsn":
            return segment_indices(num_frames, self.seg_num, self.seglen, **position)
        return dense_indices(num_frames, self.num_frames_out, self.sample_rate, **position)

    @property
    def layout(self) -> str:
        """The axes of :meth:`tensor`'s output: ``"TCHW"`` (mode ``"tsn"``) or ``"CTHW"``."""
        return "TCHW" if self.mode == "tsn" else "CTHW"

    def train_clip(self, record: dict, rng: np.random.Generator) -> np.ndarray:
        """uint8 ``[T, S, S, 3]``: one randomly sampled and augmented clip of ``record``."""
        frames = decode_frames(record, self.indices(record["num_frames"], rng))
        frames = self._training_crop(frames, rng)
        return np.ascontiguousarray(horizontal_flip(frames, rng) if self.flip else frames)

    def views(self, record: dict) -> Iterator[np.ndarray]:
        """The ``num_views`` test views of ``record``, uint8 ``[T, S, S, 3]`` each, clip-major
        (``view = crops * clip + crop``).

        The frames of all clips are decoded and scaled once.
        """
        clips, crops = TEST_VIEWS[self.test_views]
        clip_indices = [None] if clips == 1 else range(clips)
        indices = np.stack([self.indices(record["num_frames"], clip_index=k, num_clips=clips) for k in clip_indices])
        wanted, where = np.unique(indices, return_inverse=True)
        frames = self._scaled(decode_frames(record, wanted), self.short_side)
        for clip in where.reshape(indices.shape):
            for view in self._test_crops(frames[clip], crops):
                yield np.ascontiguousarray(view)

    def view_stack(self, record: dict) -> np.ndarray:
        """uint8 ``[V, T, S, S, 3]``: :meth:`views` stacked."""
        return np.stack(list(self.views(record)))

    def tensor(self, frames: np.ndarray) -> np.ndarray:
        """float32 ``[T, 3, S, S]`` or ``[3, T, S, S]`` (:attr:`layout`): the model's input of a clip
        ``[T, S, S, 3]`` (:func:`~videotk.trainers.transforms.normalize`)."""
        return normalize(frames, self.layout)

    def _test_crops(self, frames: np.ndarray, crops: int) -> list[np.ndarray]:
        """The centre crop, or with ``crops == 3`` the three crops along the long side."""
        if crops == 1:
            return [center_crop(frames, self.crop_size)]
        return list(three_crop(frames, self.crop_size))

    def _training_crop(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[T, crop_size, crop_size, 3]``: the random crop (multi-scale or of the short side scaled
        to ``short_side`` or a size drawn from ``scale_jitter``) of frames ``[T, H, W, 3]``."""
        short_side = self.short_side
        if self.scale_jitter is not None:
            short_side = int(rng.integers(self.scale_jitter[0], self.scale_jitter[1] + 1))
        if self.multi_scale:
            return multi_scale_crop(self._scaled(frames, short_side), self.crop_size, rng)
        if short_side is None:
            return random_crop(frames, self.crop_size, rng)
        return random_scaled_crop(frames, short_side, self.crop_size, rng)

    @staticmethod
    def _scaled(frames: np.ndarray, short_side: int | None) -> np.ndarray:
        return frames if short_side is None else short_side_scale(frames, short_side)


def views_from_record(record: dict, **sampling) -> np.ndarray:
    """float32 ``[V, ...]``: the model's inputs of the test views of one decoded video, exactly as a
    dataset's views of it in evaluation become (``sampling``: the keyword arguments of
    :class:`ClipSampler`).

    ``record`` has the keys of a cache record: ``num_frames``, ``height``, ``width`` and
    ``frames`` (JPEGs or one raw buffer), e.g. what ``videotk.pipelines.ffmpeg.decode_clip``
    returns for a video file.
    """
    sampler = ClipSampler(**sampling)
    return np.stack([sampler.tensor(view) for view in sampler.views(record)])


