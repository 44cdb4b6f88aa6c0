"""Clip transforms on hand-made frames whose pixels tell where they came from."""

import numpy as np
import pytest

from videotk.trainers.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop,
    horizontal_flip,
    multi_scale_crop,
    multi_scale_offsets,
    multi_scale_sizes,
    normalize,
    random_crop,
    random_scaled_crop,
    resize,
    scaled_size,
    short_side_scale,
    three_crop,
)


def positions(steps: int, height: int, width: int) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` whose pixel ``(t, y, x)`` holds ``(y, x, t)``."""
    t, y, x = np.meshgrid(np.arange(steps), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([y, x, t], axis=-1).astype(np.uint8)


def corner(clip: np.ndarray) -> tuple[int, int]:
    """``(top, left)`` where a crop of :func:`positions` frames was taken."""
    return int(clip[0, 0, 0, 0]), int(clip[0, 0, 0, 1])


def test_scaled_size_keeps_the_aspect_ratio():
    assert scaled_size(120, 160, 128) == (128, 171)
    assert scaled_size(160, 120, 128) == (171, 128)
    assert scaled_size(256, 340, 256) == (256, 340)
    assert scaled_size(100, 100, 50) == (50, 50)


def test_short_side_scale_shapes_and_no_op():
    frames = positions(3, 60, 80)
    scaled = short_side_scale(frames, 30)
    assert scaled.shape == (3, 30, 40, 3) and scaled.dtype == np.uint8
    assert short_side_scale(frames, 60) is frames
    assert short_side_scale(positions(2, 80, 60), 120).shape == (2, 160, 120, 3)


def test_resize_keeps_constant_frames_and_works_on_crops():
    frames = np.full((2, 30, 40, 3), 77, np.uint8)
    assert (resize(frames, 13, 17) == 77).all()
    noisy = np.random.default_rng(0).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    view = noisy[:, 3:23, 5:35]
    np.testing.assert_array_equal(resize(view, 10, 15), resize(np.ascontiguousarray(view), 10, 15))


def test_center_crop_position():
    clip = center_crop(positions(2, 10, 15), 4)
    assert clip.shape == (2, 4, 4, 3)
    assert corner(clip) == (3, 5)
    assert clip[1, 0, 0, 2] == 1


def test_random_crop_positions_cover_every_offset_and_repeat_for_a_seed():
    frames = positions(2, 6, 9)
    corners = {corner(random_crop(frames, 4, np.random.default_rng(seed))) for seed in range(300)}
    assert corners == {(top, left) for top in range(3) for left in range(6)}

    def drawn(seed):
        rng = np.random.default_rng(seed)
        return [corner(random_crop(frames, 4, rng)) for _ in range(5)]

    assert drawn(5) == drawn(5) and drawn(5) != drawn(6)
    clip = random_crop(frames, 4, np.random.default_rng(1))
    top, left = corner(clip)
    np.testing.assert_array_equal(clip, frames[:, top : top + 4, left : left + 4])


def test_random_scaled_crop_is_a_crop_of_the_scaled_frames():
    frames = positions(2, 60, 80)
    for seed in range(20):
        clip = random_scaled_crop(frames, 90, 48, np.random.default_rng(seed))
        reference = random_crop(short_side_scale(frames, 90), 48, np.random.default_rng(seed))
        assert clip.shape == reference.shape == (2, 48, 48, 3)
        assert np.abs(clip.astype(int) - reference).max() <= 1  # pixel (y, x) holds (y, x): positions agree
    np.testing.assert_array_equal(random_scaled_crop(frames, 60, 48, np.random.default_rng(4)),
                                  random_crop(frames, 48, np.random.default_rng(4)))
    assert random_scaled_crop(frames, 40, 32, np.random.default_rng(0)).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="cannot crop 48x48 from frames scaled to 40x53"):
        random_scaled_crop(frames, 40, 48, np.random.default_rng(0))


def test_crop_larger_than_frames_is_refused():
    with pytest.raises(ValueError, match="cannot crop 8x8 from frames of 6x9"):
        random_crop(positions(1, 6, 9), 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="scale the short side"):
        center_crop(positions(1, 6, 9), 7)


def test_three_crop_along_the_long_side():
    landscape = three_crop(positions(2, 8, 20), 6)
    assert landscape.shape == (3, 2, 6, 6, 3)
    assert [corner(view) for view in landscape] == [(1, 0), (1, 7), (1, 14)]
    portrait = three_crop(positions(2, 20, 8), 6)
    assert [corner(view) for view in portrait] == [(0, 1), (7, 1), (14, 1)]
    square = three_crop(positions(1, 8, 8), 8)
    assert [corner(view) for view in square] == [(0, 0)] * 3


def test_horizontal_flip():
    frames = positions(2, 3, 5)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(horizontal_flip(frames, rng, p=1.0), frames[:, :, ::-1])
    assert horizontal_flip(frames, rng, p=0.0) is frames
    flips = [horizontal_flip(frames, np.random.default_rng(seed))[0, 0, 0, 1] == 4 for seed in range(400)]
    assert 150 < sum(flips) < 250
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert [horizontal_flip(frames, rng_a) is frames for _ in range(8)] == [
        horizontal_flip(frames, rng_b) is frames for _ in range(8)
    ]


def test_multi_scale_sizes_by_hand():
    # int(256 * [1, .875, .75, .66]) = [256, 224, 192, 168]; heights and widths at most one scale apart
    assert multi_scale_sizes(256, 224) == [
        (256, 256), (256, 224),
        (224, 256), (224, 224), (224, 192),
        (192, 224), (192, 192), (192, 168),
        (168, 192), (168, 168),
    ]
    # 0.875 * 128 = 112 snaps to 110, and so does 0.875 * 125 = 109
    assert (110, 110) in multi_scale_sizes(128, 110) and (110, 110) in multi_scale_sizes(125, 110)
    assert multi_scale_sizes(100, 50, scales=(1, 0.5), max_distort=0) == [(100, 100), (50, 50)]


def test_multi_scale_offsets_are_corners_centre_edges_and_quarters():
    offsets = multi_scale_offsets(8, 4)
    assert len(offsets) == 13
    assert {(0, 0), (0, 4), (8, 0), (8, 4), (4, 2)} <= set(offsets)  # corners and centre
    assert {(0, 2), (8, 2), (4, 0), (4, 4), (2, 1), (2, 3), (6, 1), (6, 3)} <= set(offsets)
    assert multi_scale_offsets(0, 8) == [(0, 0), (0, 2), (0, 4), (0, 6), (0, 8)]
    assert multi_scale_offsets(0, 0) == [(0, 0)]


def test_multi_scale_crop_takes_allowed_positions():
    frames = positions(2, 12, 20)
    seen = set()
    for seed in range(200):
        clip = multi_scale_crop(frames, 12, np.random.default_rng(seed), scales=(1.0,))
        assert clip.shape == (2, 12, 12, 3)
        top, left = corner(clip)
        np.testing.assert_array_equal(clip, frames[:, top : top + 12, left : left + 12])
        seen.add((top, left))
    assert seen == set(multi_scale_offsets(0, 8))
    resized = multi_scale_crop(positions(3, 64, 80), 32, np.random.default_rng(0))
    assert resized.shape == (3, 32, 32, 3) and resized.dtype == np.uint8
    again = multi_scale_crop(positions(3, 64, 80), 32, np.random.default_rng(0))
    np.testing.assert_array_equal(resized, again)


def test_normalize_values_and_layouts():
    frames = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    frames[0, 0, 0] = 0
    frames[0, 0, 1] = 255
    out = normalize(frames)
    assert out.shape == (4, 3, 5, 6) and out.dtype == np.float32
    expected = (frames / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), atol=1e-5)
    np.testing.assert_allclose(out[0, :, 0, 0], -np.array(IMAGENET_MEAN) / IMAGENET_STD, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 1], (1 - np.array(IMAGENET_MEAN)) / IMAGENET_STD, atol=1e-6)
    assert -2.2 < out.min() and out.max() < 2.7
    channels_first = normalize(frames, "CTHW")
    assert channels_first.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(channels_first, out.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(normalize(frames[:, :, ::-1]), out[..., ::-1])
    with pytest.raises(ValueError, match="layout 'NHWC'"):
        normalize(frames, "NHWC")
