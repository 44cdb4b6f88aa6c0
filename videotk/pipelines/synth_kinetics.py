"""Synthetic Kinetics: small H.264 clips in the Kinetics layout, made with numpy and ffmpeg.

Each class is a textured shape moving across a textured, noisy background; the object wraps
around the frame edge along its axis of motion and starts at a uniformly random position.

- By default every class has its own colour and shape (and one of four directions), so a
  single frame tells the class and any model, also one that averages frames, can learn it.
- With ``motion_pairs``, classes come in pairs that share the shape, colour and texture and
  differ only in the direction of motion (left/right or up/down): every single frame has the
  same distribution for both classes of a pair, so only motion separates them, and a model
  that averages frames tops out at 50 %. Different pairs differ in colour and shape.
"""
from __future__ import annotations

import csv
import logging
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ffmpeg
import numpy as np

from .ffmpeg import ffmpeg_binary

log = logging.getLogger(__name__)

CSV_NAME = "kinetics.csv"
CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
CLIP_SECONDS = 10
ENCODE_TIMEOUT_S = 120.0

_COLOURS = {
    "red": (215, 45, 40),
    "green": (45, 175, 70),
    "blue": (55, 85, 225),
    "yellow": (225, 200, 45),
    "purple": (150, 60, 190),
    "cyan": (50, 200, 210),
    "orange": (235, 130, 35),
    "pink": (230, 120, 175),
}
_SHAPES = ("square", "disc", "triangle", "diamond")
_AXIS_DIRECTIONS = (("left", "right"), ("up", "down"))
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class MotionClass:
    """One class: a coloured shape moving along ``axis`` (0 = x, 1 = y) with ``sign`` -1 or +1."""

    colour: str
    shape: str
    axis: int
    sign: int

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape} moving {_AXIS_DIRECTIONS[self.axis][self.sign > 0]}"


def motion_classes(num_classes: int, *, motion_pairs: bool = False) -> list[MotionClass]:
    """``num_classes`` classes, each of its own appearance, or with ``motion_pairs`` in pairs of
    opposite motion where pair ``p`` has its own colour and shape (see the module docstring).

    Appearance ``a`` is ``(colour a % 8, shape (a + a // 8) % 4)``: 32 distinct ones, and
    neighbours differ in colour. Class ``i`` has appearance ``i``, moves along x when
    ``(i // 2) % 2 == 0`` (else along y), towards smaller coordinates when ``i`` is even. With
    motion pairs, pair ``p`` has appearance ``p`` and moves along x when ``p`` is even; its first
    class moves towards smaller coordinates, the second the other way.
    """
    appearances = len(_COLOURS) * len(_SHAPES)
    if motion_pairs:
        if num_classes % 2 or not 2 <= num_classes <= 2 * appearances:
            raise ValueError(
                f"num_classes must be even and in [2, {2 * appearances}] with motion pairs, got {num_classes}"
            )
        pairs = range(num_classes // 2)
        return [MotionClass(*_appearance(pair), pair % 2, sign) for pair in pairs for sign in (-1, 1)]
    if not 1 <= num_classes <= appearances:
        raise ValueError(f"num_classes must be in [1, {appearances}], got {num_classes}")
    return [MotionClass(*_appearance(i), (i // 2) % 2, 1 if i % 2 else -1) for i in range(num_classes)]


def _appearance(index: int) -> tuple[str, str]:
    """``(colour, shape)`` number ``index`` of the 32 distinct ones."""
    colours = list(_COLOURS)
    return colours[index % len(colours)], _SHAPES[(index + index // len(colours)) % len(_SHAPES)]


def render_clip(
    motion: MotionClass, rng: np.random.Generator, *, num_frames: int, fps: float, width: int, height: int
) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` uint8 RGB of one clip of ``motion``, drawn from ``rng``."""
    size = (width, height)
    radius = rng.uniform(0.09, 0.13) * min(size)
    speed = rng.uniform(0.15, 0.3) * size[motion.axis] / fps
    start = [rng.uniform(0, size[0]), rng.uniform(0, size[1])]
    start[1 - motion.axis] = rng.uniform(1.2 * radius, size[1 - motion.axis] - 1.2 * radius)
    colour = np.clip(np.array(_COLOURS[motion.colour]) + rng.integers(-15, 16, 3), 0, 255)
    background = _background(rng, width, height)
    xs, ys = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        centre = list(start)
        centre[motion.axis] += motion.sign * speed * t
        dx = _wrapped_offset(xs, centre[0], width)[None, :]
        dy = _wrapped_offset(ys, centre[1], height)[:, None]
        frame = background.copy()
        inside = _shape_mask(motion.shape, dx, dy, radius)
        frame[inside] = colour * _object_shading(dx, dy, radius)[inside][:, None]
        frame += rng.integers(-5, 6, (height, width, 1)).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random texture ``[H, W, 3]`` float32, drawn the same way for every class."""
    cell = 16
    coarse = rng.uniform(70, 170, (height // cell + 2, width // cell + 2)).astype(np.float32)
    tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return _bilinear(coarse, height, width, cell)[:, :, None] * tint


def _bilinear(grid: np.ndarray, height: int, width: int, cell: int) -> np.ndarray:
    """``grid`` [h, w] bilinearly upsampled by ``cell`` and cut to [height, width]."""
    y, x = np.arange(height) / cell, np.arange(width) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None].astype(np.float32), (x - x0)[None, :].astype(np.float32)
    rows = grid[y0] * (1 - fy) + grid[y0 + 1] * fy
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx


def _wrapped_offset(coords: np.ndarray, centre: float, period: int) -> np.ndarray:
    """Signed distance from ``centre`` along one axis of a frame whose edges wrap around."""
    return (coords - centre + period / 2) % period - period / 2


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    if shape == "square":
        return np.maximum(abs(dx), abs(dy)) <= radius * 0.85
    if shape == "disc":
        return dx**2 + dy**2 <= radius**2
    if shape == "triangle":
        return (dy <= radius * 0.8) & (abs(dx) * 1.6 <= dy + radius)
    return abs(dx) + abs(dy) <= radius * 1.2


def _object_shading(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """A stripe texture fixed to the object, so it moves with it: factors around 1."""
    return 1.0 + 0.2 * np.sin((dx + dy) * (2.5 * np.pi / radius))


def encode_clip(
    frames: np.ndarray, path: str | os.PathLike, *, fps: float, faststart: bool = False
) -> None:
    """Write ``frames`` ``[T, H, W, 3]`` uint8 RGB as an H.264 (libx264, yuv420p) mp4 at ``path``.

    One ffmpeg process reads the raw frames on stdin; single-threaded x264 and bitexact muxing
    make the file a pure function of the frames.
    """
    _, height, width, _ = frames.shape
    movflags = {"movflags": "+faststart"} if faststart else {}
    stream = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        .output(
            str(path), vcodec="libx264", pix_fmt="yuv420p", preset="ultrafast", threads=1,
            fflags="+bitexact", **{"flags:v": "+bitexact"}, **movflags,
        )
        .global_args("-hide_banner", "-nostats", "-loglevel", "error")
        .overwrite_output()
    )
    process = stream.run_async(cmd=ffmpeg_binary(), pipe_stdin=True, pipe_stdout=True, pipe_stderr=True)
    try:
        _, err = process.communicate(np.ascontiguousarray(frames).tobytes(), timeout=ENCODE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"ffmpeg did not finish encoding {path} within {ENCODE_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg failed to encode {path}: {err.decode('utf-8', 'replace').strip()}")


def youtube_ids(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct 11-character ids from ``[A-Za-z0-9_-]``."""
    ids: list[str] = []
    while len(ids) < count:
        candidate = "".join(rng.choice(_ID_ALPHABET, 11))
        if candidate not in ids:
            ids.append(candidate)
    return ids


def clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """Kinetics file name ``<youtube_id>_<start:06d>_<end:06d>.mp4``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"


def synth_kinetics(
    out_dir: str | os.PathLike,
    *,
    num_classes: int = 4,
    clips_per_class: int = 6,
    duration: float = 2.0,
    fps: float = 25,
    width: int = 320,
    height: int = 240,
    missing: int = 0,
    bad: bool = False,
    motion_pairs: bool = False,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic Kinetics dataset into ``out_dir`` and return the CSV's path.

    Clips go to ``out_dir/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (``duration`` seconds
    at ``fps``, ``width`` x ``height``); ``out_dir/kinetics.csv`` has the columns
    ``label,youtube_id,time_start,time_end,split``, one row per clip with the last quarter of
    each class (rounded, at least one when a class has two clips) in ``val``, plus ``missing``
    rows whose clips are not written, as in the real dataset. ``bad`` adds the broken clips of
    :func:`write_bad_clips` to the first class, listed in the CSV like the others.
    ``motion_pairs`` makes classes that differ only by the direction of motion
    (:func:`motion_classes`). The same ``seed`` gives the same files byte for byte.
    ``progress(clips_written, total)`` is called after every clip.
    """
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    out = Path(out_dir)
    classes = motion_classes(num_classes, motion_pairs=motion_pairs)
    rows = _csv_rows(classes, clips_per_class, missing, np.random.default_rng([seed, 0]))
    by_label = {motion.label: motion for motion in classes}
    for motion in classes:
        (out / motion.label).mkdir(parents=True, exist_ok=True)
    shape = {"num_frames": max(1, round(duration * fps)), "fps": fps, "width": width, "height": height}

    def write(index: int) -> None:
        row = rows[index]
        frames = render_clip(by_label[row["label"]], np.random.default_rng([seed, 1, index]), **shape)
        path = out / row["label"] / clip_name(row["youtube_id"], row["time_start"], row["time_end"])
        encode_clip(frames, path, fps=fps)

    num_clips = num_classes * clips_per_class
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(write, index) for index in range(num_clips)]
        for done, future in enumerate(as_completed(futures), 1):
            future.result()
            if progress is not None:
                progress(done, num_clips)
    if bad:
        rows += [_row_of(classes[0].label, path) for path in write_bad_clips(out / classes[0].label, seed=seed).values()]
    csv_path = out / CSV_NAME
    _write_csv(csv_path, rows)
    log.info("wrote %d clips (%d more listed as missing) to %s", num_clips, missing, out)
    return csv_path


def _row_of(label: str, path: Path) -> dict:
    """The CSV row of a clip named ``<youtube_id>_<start:06d>_<end:06d>.mp4`` (youtube ids may hold ``_``)."""
    youtube_id, start, end = path.stem.rsplit("_", 2)
    return {"label": label, "youtube_id": youtube_id, "time_start": int(start), "time_end": int(end), "split": "train"}


def _csv_rows(
    classes: list[MotionClass], clips_per_class: int, missing: int, rng: np.random.Generator
) -> list[dict]:
    """CSV rows: ``clips_per_class`` per class in class order, then ``missing`` rows round-robin."""
    ids = youtube_ids(rng, len(classes) * clips_per_class + missing)
    num_val = round(clips_per_class / 4) or int(clips_per_class >= 2)
    slots = [(motion, i >= clips_per_class - num_val) for motion in classes for i in range(clips_per_class)]
    slots += [(classes[i % len(classes)], i % 4 == 3) for i in range(missing)]
    rows = []
    for youtube_id, (motion, is_val) in zip(ids, slots):
        time_start = int(rng.integers(0, 600))
        rows.append(
            {
                "label": motion.label,
                "youtube_id": youtube_id,
                "time_start": time_start,
                "time_end": time_start + CLIP_SECONDS,
                "split": "val" if is_val else "train",
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_bad_clips(class_dir: str | os.PathLike, *, seed: int = 0) -> dict[str, Path]:
    """Write broken clips with Kinetics file names into ``class_dir``; returns ``{kind: path}``.

    Kinds: ``zero_byte`` (empty file), ``not_video`` (a text file named .mp4), ``audio_only``
    (an AAC sine tone, no video stream), ``truncated`` (a valid mp4 cut in half, so its moov index
    at the end is lost) and ``truncated_faststart`` (a ``+faststart`` mp4, index first, cut in half).
    """
    directory = Path(class_dir)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2])
    kinds = ("zero_byte", "not_video", "audio_only", "truncated", "truncated_faststart")
    names = [clip_name(youtube_id, 0, CLIP_SECONDS) for youtube_id in youtube_ids(rng, len(kinds))]
    paths = {kind: directory / name for kind, name in zip(kinds, names)}
    paths["zero_byte"].write_bytes(b"")
    paths["not_video"].write_text("this is not a video\n")
    _write_sine_mp4(paths["audio_only"])
    frames = render_clip(motion_classes(2)[0], rng, num_frames=50, fps=25, width=160, height=120)
    for kind, faststart in (("truncated", False), ("truncated_faststart", True)):
        encode_clip(frames, paths[kind], fps=25, faststart=faststart)
        data = paths[kind].read_bytes()
        paths[kind].write_bytes(data[: len(data) // 2])
    return paths


def _write_sine_mp4(path: Path) -> None:
    """An mp4 holding one second of a 440 Hz AAC tone and no video."""
    (
        ffmpeg.input("sine=frequency=440:duration=1", format="lavfi")
        .output(str(path), acodec="aac")
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
        .overwrite_output()
        .run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
    )
