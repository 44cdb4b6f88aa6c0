"""decode_clip against real ffmpeg on clips made on the fly."""
import io

import ffmpeg
import numpy as np
import pytest
from PIL import Image

from videotk.pipelines.ffmpeg import DecodeError, decode_clip, ffmpeg_binary, jpeg_size, split_jpegs
from videotk.pipelines.synth_kinetics import encode_clip, motion_classes, render_clip, write_bad_clips

SECONDS, FPS = 2, 25


def _make_clip(path, *, width, height, faststart=False):
    rng = np.random.default_rng(7)
    frames = render_clip(motion_classes(2)[1], rng,
                         num_frames=SECONDS * FPS, fps=FPS, width=width, height=height)
    encode_clip(frames, path, fps=FPS, faststart=faststart)
    return path


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    return _make_clip(tmp_path_factory.mktemp("clips") / "landscape.mp4", width=320, height=240)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    return _make_clip(tmp_path_factory.mktemp("clips") / "portrait.mp4", width=240, height=320)


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory):
    return write_bad_clips(tmp_path_factory.mktemp("bad") / "abseiling")


def _pixels(jpegs):
    return np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])


@pytest.mark.parametrize(
    "clip, long_side_axis", [("landscape", "width"), ("portrait", "height")]
)
def test_jpeg_frames_have_short_side_256_and_keep_aspect(clip, long_side_axis, request):
    out = decode_clip(request.getfixturevalue(clip))
    short_axis = "height" if long_side_axis == "width" else "width"
    assert out["fps"] == 25.0 and out["num_frames"] == SECONDS * FPS == len(out["frames"])
    assert out[short_axis] == 256
    assert out[long_side_axis] % 2 == 0 and abs(out[long_side_axis] - 256 * 4 / 3) <= 1
    for jpeg in out["frames"]:
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG" and not image.info.get("progressive")
        assert (image.height, image.width) == (out["height"], out["width"])


def test_raw_frames_match_jpeg_frames(landscape):
    jpeg, raw = decode_clip(landscape), decode_clip(landscape, codec="raw")
    for key in ("num_frames", "height", "width"):
        assert raw[key] == jpeg[key]
    assert len(raw["frames"]) == raw["num_frames"] * raw["height"] * raw["width"] * 3
    pixels = np.frombuffer(raw["frames"], np.uint8).reshape(raw["num_frames"], raw["height"], raw["width"], 3)
    assert np.abs(pixels.astype(int) - _pixels(jpeg["frames"])).mean() < 3


@pytest.mark.parametrize("fps, frames", [(10, 20), (7, 14), (12.5, 25), (30, 60), (0.4, 1)])
def test_fps_resampling_gives_duration_times_fps_rounded(landscape, fps, frames):
    assert decode_clip(landscape, fps=fps, codec="raw", short_side=None)["num_frames"] == frames


def test_short_side_none_keeps_size(landscape):
    out = decode_clip(landscape, short_side=None, quality=31)
    assert (out["height"], out["width"]) == (240, 320)


def test_split_jpegs_ignores_end_marker_bytes_inside_segments():
    images = []
    for shade in (0, 255):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 8), (shade, 0, 0)).save(buffer, "JPEG", comment=b"\xff\xd9 not the end")
        images.append(buffer.getvalue())
    assert split_jpegs(b"".join(images)) == images
    assert jpeg_size(images[0]) == (8, 16)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("zero_byte", "zero-byte file"),
        ("not_video", "not a video file"),
        ("audio_only", "no video stream"),
        ("truncated", "moov atom not found"),
        ("truncated_faststart", "truncated or corrupt video data"),
    ],
)
def test_bad_clips_raise_decode_error_with_reason(bad_clips, kind, reason):
    with pytest.raises(DecodeError) as caught:
        decode_clip(bad_clips[kind])
    assert reason in caught.value.reason
    assert caught.value.source == str(bad_clips[kind])
    assert str(bad_clips[kind]) in str(caught.value)


def _sample_sizes(mp4: bytes) -> list[int]:
    """Sample sizes from the (single) stsz box of an mp4."""
    at = mp4.index(b"stsz") + 4
    count = int.from_bytes(mp4[at + 8 : at + 12], "big")
    return [int.from_bytes(mp4[at + 12 + 4 * i : at + 16 + 4 * i], "big") for i in range(count)]


def test_faststart_clip_cut_at_a_packet_boundary_is_truncated(tmp_path):
    data = _make_clip(tmp_path / "fast.mp4", width=160, height=120, faststart=True).read_bytes()
    mdat_data = data.index(b"mdat") + 4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: mdat_data + sum(_sample_sizes(data)[: SECONDS * FPS // 2])])
    with pytest.raises(DecodeError, match=r"decoded 25 frames \(1.00 s\) of a 2.00 s clip: truncated"):
        decode_clip(cut)


def test_faststart_clip_cut_inside_audio_data_is_truncated(tmp_path):
    """ffmpeg exits 0 here: the video just ends early, and the mp4 demuxer logs "partial file"."""
    encode_clip(np.full((SECONDS * FPS, 48, 64, 3), 90, np.uint8), tmp_path / "video.mp4", fps=FPS)
    noise = ffmpeg.input(f"anoisesrc=duration={SECONDS}:seed=1", format="lavfi").audio
    muxed = tmp_path / "muxed.mp4"
    (
        ffmpeg.output(ffmpeg.input(str(tmp_path / "video.mp4")).video, noise, str(muxed),
                      vcodec="copy", acodec="aac", movflags="+faststart")
        .global_args("-hide_banner", "-loglevel", "error")
        .run(cmd=ffmpeg_binary())
    )
    data = muxed.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="partial file"):
        decode_clip(cut)


def test_missing_file_too_few_frames_and_timeout(tmp_path, landscape):
    with pytest.raises(DecodeError, match="file not found"):
        decode_clip(tmp_path / "absent.mp4")
    with pytest.raises(DecodeError, match="decoded 0 frames"):
        decode_clip(landscape, fps=0.2)
    with pytest.raises(DecodeError, match="did not finish within"):
        decode_clip(landscape, timeout=0.001)


@pytest.mark.parametrize(
    "options", [{"codec": "png"}, {"short_side": 255}, {"fps": 0}, {"quality": 0}]
)
def test_bad_options_raise_value_error(landscape, options):
    with pytest.raises(ValueError):
        decode_clip(landscape, **options)
