"""Decode one video clip into JPEG or raw RGB frames with a single ffmpeg process.

The filter chain is ``fps`` (resample to a constant frame rate) then ``scale`` (short side to a
fixed size, aspect kept, even dimensions), and the frames stream back through a pipe: no
temporary files. Any clip that cannot be decoded completely raises :class:`DecodeError`, which
names the file and says what was wrong.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess

import ffmpeg

log = logging.getLogger(__name__)

DECODE_TIMEOUT_S = 120.0
MIN_COVERAGE = 0.9
CODECS = ("jpeg", "raw")

_LOG_LINE = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\] )*\[(error|fatal)\] (.*)$", re.MULTILINE)
_DURATION = re.compile(r"^\[info\] +Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
_OUTPUT_SIZE = re.compile(r"^\[info\] +Stream #0:0\S*: Video: .*?, (\d+)x(\d+)", re.MULTILINE)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class DecodeError(Exception):
    """A clip that could not be decoded completely.

    Attributes:
        source: the clip's path.
        reason: short human text saying what is wrong, e.g. ``"no video stream"``.
        ffmpeg_log: ffmpeg's error lines, if ffmpeg ran.
    """

    def __init__(self, source: str | os.PathLike, reason: str, ffmpeg_log: str = "") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = reason
        self.ffmpeg_log = ffmpeg_log


@functools.cache
def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable: ``ffmpeg`` on PATH, else the one in the imageio-ffmpeg wheel."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise RuntimeError(
            "no ffmpeg found: install ffmpeg on PATH or `pip install imageio-ffmpeg`"
        ) from exc


def decode_clip(
    path: str | os.PathLike,
    *,
    fps: float = 25.0,
    short_side: int | None = 256,
    codec: str = "jpeg",
    quality: int = 3,
    timeout: float = DECODE_TIMEOUT_S,
) -> dict:
    """Decode a clip at ``fps`` with its short side scaled to ``short_side``.

    Returns ``{"fps", "num_frames", "height", "width", "frames"}``. For ``codec="jpeg"``,
    ``frames`` is a list of ``num_frames`` baseline JPEGs (ffmpeg's mjpeg encoder at ``-q:v
    quality``, 2 best .. 31 smallest); for ``codec="raw"`` it is one bytes object holding uint8
    RGB frames ``[T, H, W, 3]`` in row-major order. ``short_side=None`` or ``0`` keeps the size.

    ffmpeg's fps filter yields ``floor(duration * fps + 0.5)`` frames for a clip of ``duration``
    seconds starting at 0 (for example 2 s at 25 fps resampled to 10 fps gives 20 frames).

    Raises :class:`DecodeError` when the clip is missing or zero bytes, and otherwise whenever
    ffmpeg does not decode it completely. The rules, found by cutting mp4s at many offsets:

    - ffmpeg exits non-zero. It runs with ``-xerror``, so besides files it cannot open (not a
      video, no video stream, an mp4 cut before its moov index, which sits at the end unless the
      file was written with ``+faststart``) any demux or decode error stops it, e.g. a
      ``+faststart`` mp4 cut inside a video packet.
    - ffmpeg exits 0 but logs an error. A ``+faststart`` mp4 cut inside an audio packet ends
      the video early without failing; the mp4 demuxer logs "partial file" at error level.
    - the frames, give or take one, cover less than ``MIN_COVERAGE`` of the container's
      duration. A file cut exactly at a packet boundary decodes without any error; so does a
      complete file whose video stream stops well before its audio, which is refused too.
    - zero frames after resampling (a clip shorter than one output frame), or ffmpeg running
      longer than ``timeout`` seconds (it is killed).
    """
    check_options(fps, short_side, codec, quality)
    source = _existing_clip(path)
    stream = _decode_stream(source, float(fps), short_side, codec, quality)
    data, ffmpeg_log = _run(stream, source, timeout)
    frames, num_frames, height, width = _frames(data, ffmpeg_log, codec, source)
    if num_frames == 0:
        raise DecodeError(source, "decoded 0 frames")
    _check_coverage(source, num_frames, float(fps), ffmpeg_log)
    return {
        "fps": float(fps),
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "frames": frames,
    }


def split_jpegs(stream: bytes) -> list[bytes]:
    """Split concatenated JPEG images (an mjpeg pipe) into one bytes object per image.

    Walks the marker structure (SOI, length-prefixed segments, SOS, entropy-coded data up to
    EOI) rather than searching for ``FFD9``, which may also occur inside segment payloads.
    """
    images = []
    start = 0
    while start < len(stream):
        end = _jpeg_end(stream, start)
        images.append(stream[start:end])
        start = end
    return images


def jpeg_size(image: bytes) -> tuple[int, int]:
    """``(height, width)`` from a JPEG's start-of-frame header."""
    pos = 2
    while pos + 4 <= len(image):
        marker, length = image[pos + 1], int.from_bytes(image[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            return (
                int.from_bytes(image[pos + 5 : pos + 7], "big"),
                int.from_bytes(image[pos + 7 : pos + 9], "big"),
            )
        pos += 2 + length
    raise ValueError("JPEG has no start-of-frame header")


def _jpeg_end(stream: bytes, start: int) -> int:
    """Offset just past the EOI of the JPEG that begins at ``start``."""
    if stream[start : start + 2] != b"\xff\xd8":
        raise ValueError(f"no JPEG start-of-image at byte {start}")
    pos = start + 2
    while pos + 2 <= len(stream):
        if stream[pos] != 0xFF:
            raise ValueError(f"expected a JPEG marker at byte {pos}")
        marker = stream[pos + 1]
        if marker == 0xD9:
            return pos + 2
        pos += 2 + int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            found = _JPEG_MARKER.search(stream, pos)
            if found is None:
                break
            pos = found.start()
    raise ValueError(f"JPEG starting at byte {start} has no end-of-image marker")


def check_options(fps: float, short_side: int | None, codec: str, quality: int) -> None:
    """Reject bad options up front (``ValueError``), so that ffmpeg errors always mean a bad clip."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    check_short_side(short_side)
    if not 1 <= quality <= 31:
        raise ValueError(f"quality (ffmpeg -q:v) must be in 1..31, got {quality}")


def check_short_side(short_side: int | None) -> None:
    """``short_side`` must be 0 / None (keep the size) or even and at least 2 (H.264 and yuv420p
    frames have even sizes); ``ValueError`` otherwise."""
    if short_side and (short_side < 2 or short_side % 2):
        raise ValueError(f"the short side must be 0 (keep the size) or an even number of pixels, at least 2; got {short_side}")


def _existing_clip(path: str | os.PathLike) -> str:
    source = os.path.abspath(path)
    if not os.path.isfile(source):
        raise DecodeError(source, "file not found")
    if os.path.getsize(source) == 0:
        raise DecodeError(source, "zero-byte file")
    return source


def _scale_args(short_side: int) -> tuple[str, str]:
    """Width and height expressions that make the short side ``short_side``, aspect kept."""
    return (
        f"if(lte(iw,ih),{short_side},-2)",
        f"if(lte(iw,ih),-2,{short_side})",
    )


def _decode_stream(source: str, fps: float, short_side: int | None, codec: str, quality: int):
    video = ffmpeg.input(source, threads=1).video.filter("fps", fps=fps)
    if short_side:
        video = video.filter("scale", *_scale_args(short_side))
    if codec == "jpeg":
        out = video.output(
            "pipe:", format="image2pipe", vcodec="mjpeg", pix_fmt="yuvj420p", threads=1, **{"q:v": quality}
        )
    else:
        out = video.output("pipe:", format="rawvideo", pix_fmt="rgb24")
    return out.global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-xerror")


def _run(stream, source: str, timeout: float) -> tuple[bytes, str]:
    """ffmpeg's stdout and its log; DecodeError on a non-zero exit, a logged error or a timeout.

    ffmpeg runs in a session of its own: Ctrl-C in a terminal goes to the whole foreground process
    group, and an ffmpeg that stops early on SIGINT would look like a truncated clip. The process
    that runs it stops it instead, on any exception (KeyboardInterrupt too).
    """
    process = subprocess.Popen(stream.compile(cmd=ffmpeg_binary()), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        data, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise DecodeError(source, f"ffmpeg did not finish within {timeout:g} s") from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    ffmpeg_log = err.decode("utf-8", "replace")
    errors = _error_lines(ffmpeg_log)
    if process.returncode != 0 or errors:
        raise DecodeError(source, _failure_reason(source, errors), errors)
    return data, ffmpeg_log


def _error_lines(ffmpeg_log: str) -> str:
    return "\n".join(m.group(2) for m in _LOG_LINE.finditer(ffmpeg_log))


def _failure_reason(source: str, errors: str) -> str:
    first = errors.partition("\n")[0] or "exited with an error"
    if "matches no streams" in errors:
        return "no video stream"
    if "moov atom not found" in errors:
        return _moov_reason(source)
    if "corrupt input packet" in errors or "partial file" in errors:
        return f"truncated or corrupt video data (ffmpeg: {first})"
    return f"ffmpeg: {first}"


def _moov_reason(source: str) -> str:
    with open(source, "rb") as f:
        head = f.read(12)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "ffmpeg: moov atom not found (truncated or not an mp4)"
    return f"not a video file: no mp4 header (starts with {head[:8]!r})"


def _raw_size(ffmpeg_log: str, source: str) -> tuple[int, int]:
    """``(height, width)`` of ffmpeg's output stream, read from its log."""
    output_section = ffmpeg_log.find("Output #0")
    found = _OUTPUT_SIZE.search(ffmpeg_log, output_section) if output_section >= 0 else None
    if found is None:
        raise DecodeError(source, "ffmpeg did not report the output frame size")
    return int(found.group(2)), int(found.group(1))


def _frames(
    data: bytes, ffmpeg_log: str, codec: str, source: str
) -> tuple[list[bytes] | bytes, int, int, int]:
    """``(frames, num_frames, height, width)`` from ffmpeg's output in ``codec``."""
    if codec == "jpeg":
        frames, height, width = _jpeg_frames(data, source)
        return frames, len(frames), height, width
    height, width = _raw_size(ffmpeg_log, source)
    return data, _raw_frame_count(data, height, width, source), height, width


def _jpeg_frames(data: bytes, source: str) -> tuple[list[bytes], int, int]:
    """The JPEGs in ffmpeg's mjpeg output and their ``(height, width)``."""
    try:
        frames = split_jpegs(data)
        height, width = jpeg_size(frames[0]) if frames else (0, 0)
    except ValueError as exc:
        raise DecodeError(source, f"unreadable mjpeg output from ffmpeg: {exc}") from None
    return frames, height, width


def _raw_frame_count(data: bytes, height: int, width: int, source: str) -> int:
    num_frames, extra = divmod(len(data), height * width * 3)
    if extra:
        raise DecodeError(
            source, f"raw output of {len(data)} bytes is not a whole number of {width}x{height} RGB frames"
        )
    return num_frames


def _check_coverage(source: str, num_frames: int, fps: float, ffmpeg_log: str) -> None:
    """Raise if the frames, give or take one, cover under MIN_COVERAGE of the container duration."""
    found = _DURATION.search(ffmpeg_log)
    if found is None:
        log.debug("%s: no container duration reported; frame coverage not checked", source)
        return
    hours, minutes, seconds = found.groups()
    duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    expected = int(duration * fps + 0.5)
    if num_frames + 1 < MIN_COVERAGE * expected:
        raise DecodeError(
            source,
            f"decoded {num_frames} frames ({num_frames / fps:.2f} s) of a {duration:.2f} s clip: "
            "truncated, or the video stream ends early",
        )
