"""Training targets of BSN, BMN and C-TCN, checked against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from videotk.trainers.targets import (
    bmn_targets,
    ctcn_anchors,
    ctcn_level_sizes,
    ctcn_match,
    ctcn_targets,
    decode_ctcn,
    encode_ctcn,
    tem_targets,
)


def close(a, b):
    np.testing.assert_allclose(a, b, atol=1e-6)


# --- BSN TEM -------------------------------------------------------------------------------------------

def test_tem_short_segment_uses_the_one_snippet_boundary_width():
    # [0.1, 0.35] at 10 snippets: 0.1 * 0.25 < 1/10, so the boundary regions are 0.1 wide:
    # start [0.05, 0.15] covers half of snippets 0 and 1, end [0.3, 0.4] all of snippet 3.
    action, start, end = tem_targets([[0.1, 0.35]], 10)
    close(action, [0, 1, 1, 0.5, 0, 0, 0, 0, 0, 0])
    close(start, [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0])
    close(end, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    assert action.dtype == start.dtype == end.dtype == np.float32


def test_tem_long_segment_uses_a_tenth_of_its_length():
    # [0.2, 0.8] at 20 snippets: 0.1 * 0.6 > 1/20, so the regions are 0.06 wide, [0.17, 0.23] and
    # [0.77, 0.83]: 0.03 of each 0.05-long neighbouring snippet.
    _, start, end = tem_targets([[0.2, 0.8]], 20)
    close(start, np.eye(20)[3] * 0.6 + np.eye(20)[4] * 0.6)
    close(end, np.eye(20)[15] * 0.6 + np.eye(20)[16] * 0.6)


def test_tem_takes_the_best_segment_clips_to_the_video_and_accepts_none():
    action, _, _ = tem_targets([[0.0, 0.25], [0.2, 0.45]], 4)
    close(action, [1, 0.8, 0, 0])
    close(tem_targets([[-0.2, 1.3]], 5)[0], np.ones(5))
    for curve in tem_targets(np.zeros((0, 2)), 6):
        close(curve, np.zeros(6))
    with pytest.raises(ValueError, match=r"segments\[0\] ends before it starts"):
        tem_targets([[0.5, 0.4]], 10)


# --- BMN -----------------------------------------------------------------------------------------------

def test_bmn_iou_map_by_hand():
    iou_map, _, _ = bmn_targets([[0.2, 0.5]], 10, 10)
    assert iou_map.shape == (10, 10) and iou_map.dtype == np.float32
    assert iou_map[2, 2] == pytest.approx(1.0)             # [0.2, 0.5] itself
    assert iou_map[0, 2] == pytest.approx(1 / 3)           # [0.2, 0.3]
    assert iou_map[3, 2] == pytest.approx(0.75)            # [0.2, 0.6]
    assert iou_map[1, 0] == pytest.approx(0.0)             # [0.0, 0.2] only touches it
    assert iou_map[9, 1] == pytest.approx(0.3 / 1.0)       # [0.1, 1.1]: beyond the video, not clipped


def test_bmn_boundaries_are_three_snippets_wide_at_any_tscale():
    _, start, end = bmn_targets([[0.2, 0.5]], 10, 10)      # regions [0.05, 0.35] and [0.35, 0.65]
    close(start, [0.5, 1, 1, 0.5, 0, 0, 0, 0, 0, 0])
    close(end, [0, 0, 0, 0.5, 1, 1, 0.5, 0, 0, 0])
    _, start, _ = bmn_targets([[0.2, 0.5]], 20, 20)        # region [0.125, 0.275], 3/20 wide
    close(start, [0, 0, 0.5, 1, 1, 0.5] + [0] * 14)


def test_bmn_without_segments_and_with_fewer_durations():
    iou_map, start, end = bmn_targets([], 8, 4)
    assert iou_map.shape == (4, 8) and not iou_map.any() and not start.any() and not end.any()


# --- C-TCN ---------------------------------------------------------------------------------------------

def test_ctcn_anchors_at_the_seed():
    anchors = ctcn_anchors()
    assert ctcn_level_sizes() == [128, 64, 32, 16, 8, 4, 2, 1]
    assert anchors.shape == (1785, 2)
    close(anchors[:7], [[2, w] for w in (4, 3.6, 4.4, 3.2, 4.8, 2.8, 5.2)])
    close(anchors[7, 0], 6.0)
    close(anchors[7 * 128], [4, 8])                          # first position of the step-8 level
    close(anchors[-7:], [[256, w] for w in (512, 460.8, 435.2, 409.6, 384, 358.4, 332.8)])


def test_ctcn_tiny_anchors_and_bad_sizes():
    assert ctcn_level_sizes(64, 5) == [16, 8, 4, 2, 1] and len(ctcn_anchors(64, 5)) == 7 * 31
    close(ctcn_anchors(64, 5)[-7:, 1], [64, 57.6, 54.4, 51.2, 48, 44.8, 41.6])
    with pytest.raises(ValueError, match="multiple of 64"):
        ctcn_level_sizes(96, 5)


def test_ctcn_encoding_by_hand():
    close(encode_ctcn([[100.0, 140.0]], np.array([[118.0, 32.0]])), [[0.625, 1.25]])
    close(decode_ctcn(np.zeros((1785, 2)))[-1], [256 - 332.8 / 2, 256 + 332.8 / 2])


def test_ctcn_greedy_matching_then_the_threshold():
    anchors = np.array([[5.0, 10.0], [6.0, 10.0], [50.0, 10.0]])
    # anchor 0 is box 0 exactly; anchor 1 overlaps it 9/11 >= 0.5 and also takes it (the 2019 code did
    # not when it was the only such anchor); anchor 2 stays background
    assert ctcn_match([[0, 10]], anchors).tolist() == [0, 0, -1]
    anchors = np.array([[5.0, 10.0], [7.0, 10.0]])
    assert ctcn_match([[0, 10], [1, 11]], anchors).tolist() == [0, 1]
    assert ctcn_match(np.zeros((0, 2)), anchors).tolist() == [-1, -1]


def test_ctcn_targets_round_trip():
    boxes = np.array([[10.0, 50.0], [200.0, 400.0], [0.0, 512.0]])
    loc, cls = ctcn_targets(boxes, [3, 1, 2])
    assert loc.shape == (1785, 2) and loc.dtype == np.float32 and cls.shape == (1785,) and cls.dtype == np.int64
    assert set(cls.tolist()) == {0, 1, 2, 3} and cls[-7] == 2      # the whole-input anchor is box 3
    assert not loc[cls == 0].any()
    index = ctcn_match(boxes, ctcn_anchors())
    decoded = decode_ctcn(loc)
    np.testing.assert_allclose(decoded[cls > 0], boxes[index[cls > 0]], atol=1e-3)


def test_ctcn_targets_refuse_background_labels_and_count_mismatches():
    with pytest.raises(ValueError, match="labels must be 1..C"):
        ctcn_targets([[0, 10]], [0])
    with pytest.raises(ValueError, match="1 boxes but 2 labels"):
        ctcn_targets([[0, 10]], [1, 2])
    loc, cls = ctcn_targets(np.zeros((0, 2)), [], img_size=64, num_levels=5)
    assert loc.shape == (217, 2) and not cls.any()
    with pytest.raises(ValueError, match=r"\[\.\.\., 217, 2\]"):
        decode_ctcn(np.zeros((1785, 2)), img_size=64, num_levels=5)
