"""Spatial transforms of video clips: pure functions on uint8 RGB frames ``[T, H, W, 3]``.

Every frame of a clip gets the same crop, scale and flip. Random choices come from the
``numpy.random.Generator`` passed in, so a generator in the same state gives the same output.
Crops are views of their input; resizing is bilinear (OpenCV's ``INTER_LINEAR``, several times
faster on uint8 frames than Pillow's or a numpy implementation), and flips and the channel split
of :func:`normalize`, which turns a clip into the float32 tensor a model takes, use OpenCV too.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)
LAYOUTS = ("TCHW", "CTHW")

#: :func:`normalize` is ``x * NORMALIZE_SCALE[c] - NORMALIZE_SHIFT[c]`` in float32, per channel ``c``
NORMALIZE_SCALE = (1.0 / (255.0 * np.array(IMAGENET_STD))).astype(np.float32)
NORMALIZE_SHIFT = (np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)).astype(np.float32)
# Crop positions of multi_scale_crop in quarters of the free room (top, left): the corners, the
# centre, the middles of the edges and the four quarter points.
_QUARTER_POSITIONS = (
    (0, 0), (0, 4), (4, 0), (4, 4), (2, 2),
    (0, 2), (4, 2), (2, 0), (2, 4),
    (1, 1), (1, 3), (3, 1), (3, 3),
)


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(height, width)`` with the shorter side ``short_side`` and the aspect ratio kept (the
    longer side rounded to the nearest pixel)."""
    if height <= width:
        return short_side, round(width * short_side / height)
    return round(height * short_side / width), short_side


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``[T, height, width, 3]``: ``frames`` ``[T, H, W, 3]`` resized bilinearly."""
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for frame, target in zip(frames, out):
        cv2.resize(frame, (width, height), dst=target, interpolation=cv2.INTER_LINEAR)
    return out


def short_side_scale(frames: np.ndarray, size: int) -> np.ndarray:
    """``frames`` ``[T, H, W, 3]`` resized so the shorter side is ``size``, aspect kept
    (:func:`scaled_size`); the input itself when it already has that size."""
    height, width = frames.shape[1:3]
    target = scaled_size(height, width, size)
    if target == (height, width):
        return frames
    return resize(frames, *target)


def _checked_fit(frames: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """The frames' ``(H, W)``; ValueError when a ``height`` x ``width`` crop does not fit."""
    frame_height, frame_width = frames.shape[1:3]
    if height > frame_height or width > frame_width:
        raise ValueError(
            f"cannot crop {height}x{width} from frames of {frame_height}x{frame_width}; "
            f"scale the short side to at least the crop size"
        )
    return frame_height, frame_width


def crop(frames: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """View ``[T, height, width, 3]`` of ``frames`` whose top-left corner is ``(top, left)``."""
    return frames[:, top : top + height, left : left + width]


def random_crop(frames: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[T, size, size, 3]`` at a position drawn uniformly from all that fit."""
    height, width = _checked_fit(frames, size, size)
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    return crop(frames, top, left, size, size)


def random_scaled_crop(frames: np.ndarray, short_side: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[T, size, size, 3]``: ``random_crop(short_side_scale(frames, short_side), size, rng)``,
    resizing only the crop.

    The crop's position is drawn (the same draws as :func:`random_crop`) in the scaled frame; its
    box is mapped back onto ``frames``, rounded to whole pixels (a scale error under half a pixel
    across the crop) and resized to ``size``: about half the work of scaling whole frames.
    """
    height, width = frames.shape[1:3]
    scaled_height, scaled_width = scaled_size(height, width, short_side)
    if (scaled_height, scaled_width) == (height, width):
        return random_crop(frames, size, rng)
    if size > min(scaled_height, scaled_width):
        raise ValueError(f"cannot crop {size}x{size} from frames scaled to {scaled_height}x{scaled_width}")
    top, left = rng.integers(0, scaled_height - size + 1), rng.integers(0, scaled_width - size + 1)
    rows = _source_span(top, size, height / scaled_height)
    columns = _source_span(left, size, width / scaled_width)
    return resize(frames[:, rows, columns], size, size)


def _source_span(start: int, size: int, ratio: float) -> slice:
    """The whole source pixels under scaled pixels ``start .. start + size - 1`` (at least one)."""
    first = round(start * ratio)
    return slice(first, max(round((start + size) * ratio), first + 1))


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """``[T, size, size, 3]`` from the middle (offsets rounded down)."""
    height, width = _checked_fit(frames, size, size)
    return crop(frames, (height - size) // 2, (width - size) // 2, size, size)


def three_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """``[3, T, size, size, 3]``: crops at the start, middle and end of the longer side (left,
    centre, right of a landscape frame; top, middle, bottom of a portrait one), centred on the
    shorter side, as Non-local tests. A square frame is cut along its width."""
    height, width = _checked_fit(frames, size, size)
    if height > width:
        starts = (0, (height - size) // 2, height - size)
        return np.stack([crop(frames, top, (width - size) // 2, size, size) for top in starts])
    starts = (0, (width - size) // 2, width - size)
    return np.stack([crop(frames, (height - size) // 2, left, size, size) for left in starts])


def horizontal_flip(frames: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """``frames`` ``[T, H, W, 3]`` mirrored left-right (into a new array) with probability ``p``,
    else the input itself."""
    if rng.random() >= p:
        return frames
    out = np.empty(frames.shape, np.uint8)
    for frame, target in zip(frames, out):
        cv2.flip(frame, 1, dst=target)
    return out


def multi_scale_sizes(
    short_side: int, size: int, scales: Sequence[float] = MULTI_SCALES, max_distort: int = 1
) -> list[tuple[int, int]]:
    """The ``(height, width)`` crop sizes of :func:`multi_scale_crop` on frames whose shorter
    side is ``short_side``.

    Each side is ``int(short_side * scale)`` for one of ``scales`` (snapped to ``size`` when
    within 2 pixels of it); height and width take scales at most ``max_distort`` places apart
    in ``scales``, so the aspect ratio changes a little.
    """
    sides = [int(short_side * scale) for scale in scales]
    sides = [size if abs(side - size) < 3 else side for side in sides]
    return [
        (height, width)
        for i, height in enumerate(sides)
        for j, width in enumerate(sides)
        if abs(i - j) <= max_distort
    ]


def multi_scale_offsets(free_height: int, free_width: int) -> list[tuple[int, int]]:
    """The distinct ``(top, left)`` positions of a crop that leaves ``free_height`` x
    ``free_width`` pixels of room: corners, centre, edge middles and quarter points, each
    offset ``k * free // 4`` for ``k`` in 0..4."""
    positions = {(i * free_height // 4, j * free_width // 4) for i, j in _QUARTER_POSITIONS}
    return sorted(positions)


def multi_scale_crop(
    frames: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scales: Sequence[float] = MULTI_SCALES,
    max_distort: int = 1,
) -> np.ndarray:
    """``[T, size, size, 3]``: TSN / TSM training's multi-scale crop.

    A crop size is drawn from :func:`multi_scale_sizes` (scales of the shorter side), a
    position from the fixed :func:`multi_scale_offsets`, and the crop is resized to ``size``.
    """
    height, width = frames.shape[1:3]
    sizes = multi_scale_sizes(min(height, width), size, scales, max_distort)
    crop_height, crop_width = sizes[rng.integers(len(sizes))]
    offsets = multi_scale_offsets(height - crop_height, width - crop_width)
    top, left = offsets[rng.integers(len(offsets))]
    return resize(crop(frames, top, left, crop_height, crop_width), size, size)


def normalize(frames: np.ndarray, layout: str = "TCHW") -> np.ndarray:
    """float32 ``[T, 3, H, W]`` (``layout="TCHW"``) or ``[3, T, H, W]`` (``"CTHW"``) of uint8
    ``frames`` ``[T, H, W, 3]``: ``(x / 255 - mean) / std`` per channel with ImageNet's RGB
    mean and std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    steps, height, width = frames.shape[:3]
    if layout == "CTHW":
        out = np.empty((3, steps, height, width), np.float32)
        planes = out
    else:
        out = np.empty((steps, 3, height, width), np.float32)
        planes = out.transpose(1, 0, 2, 3)
    for step, frame in enumerate(frames):
        for channel, plane in enumerate(cv2.split(frame)):
            target = planes[channel, step]
            np.multiply(plane, NORMALIZE_SCALE[channel], out=target)
            target -= NORMALIZE_SHIFT[channel]
    return out
