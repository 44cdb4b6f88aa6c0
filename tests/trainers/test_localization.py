"""Localization post-processing (BMN, BSN's PGM and PEM features, soft-NMS, C-TCN's NMS) on cases
computed by hand, and ActivityNet's result file read back to the same metrics."""

import bisect
import json
import math

import numpy as np
import pytest

from videotk.evaluators.detection import DetectionEvaluator
from videotk.evaluators.proposals import ProposalEvaluator, read_activitynet_results
from videotk.trainers.localization import (
    BSN_SOFT_NMS,
    activitynet_results,
    bmn_proposals,
    boundary_candidates,
    bsn_scores,
    bsp_features,
    candidate_ioas,
    candidate_ious,
    ctcn_detections,
    gaussian_soft_nms,
    nms,
    pgm_proposals,
    result_entries,
    soft_nms,
    to_seconds,
)


def test_boundary_candidates_are_peaks_or_above_half_the_maximum():
    scores = [0.1, 0.3, 0.2, 0.9, 0.4, 0.5]
    assert boundary_candidates(scores).tolist() == [False, True, False, True, False, True]
    assert boundary_candidates([0.5, 0.5, 0.5]).tolist() == [True, True, True]  # all above half the maximum
    assert boundary_candidates([0.1, 0.1, 0.9], threshold=0.95).tolist() == [False, False, True]


def test_bmn_proposals_by_hand():
    start, end = [0.2, 0.9, 0.1], [0.7, 0.1, 0.8]  # starts {0 (forced), 1}, ends {0, 2}
    confidence = np.stack([np.arange(9).reshape(3, 3) / 10, np.full((3, 3), 0.5)])  # [reg, cls][d, s]
    found = bmn_proposals(start, end, confidence, tscale=3, dscale=3)
    # by duration then start: (d 0, s 0), (d 1, s 1), (d 2, s 0)
    assert found == pytest.approx(np.array([[0, 1 / 3, 0.2 * 0.7 * 0.0 * 0.5],
                                            [1 / 3, 1, 0.9 * 0.8 * 0.4 * 0.5],
                                            [0, 1, 0.2 * 0.8 * 0.6 * 0.5]]))
    with pytest.raises(ValueError, match=r"expected \[4\], \[4\], \[2, 3, 4\]"):
        bmn_proposals(start, end, confidence, tscale=4)


def test_soft_nms_by_hand_keeps_at_most_all_but_the_last():
    proposals = np.array([[0.1, 0.45, 0.8], [0.0, 0.05, 0.05], [0.1, 0.5, 0.9], [0.6, 0.9, 0.5]])
    # The best (0.1-0.5, width 0.4) decays 0.1-0.45 (IoU 0.875 > 0.55 + 0.35 * 0.4); 0.6-0.9 does not
    # overlap. Then 0.6-0.9, then the decayed one; the last remaining one is never kept.
    decayed = 0.8 * math.exp(-0.875 ** 2 / 0.4)
    assert soft_nms(proposals) == pytest.approx(np.array([[0.1, 0.5, 0.9], [0.6, 0.9, 0.5], [0.1, 0.45, decayed]]))
    assert soft_nms(proposals, top_k=2) == pytest.approx(np.array([[0.1, 0.5, 0.9], [0.6, 0.9, 0.5]]))
    bsn = soft_nms(proposals, **BSN_SOFT_NMS)  # 0.875 > 0.65 + 0.25 * 0.4, decay exp(-IoU^2 / 0.75)
    assert bsn[2, 2] == pytest.approx(0.8 * math.exp(-0.875 ** 2 / 0.75))
    assert soft_nms([[0.2, 0.4, 0.3]]).tolist() == [[0.2, 0.4, 0.3]]
    assert soft_nms(np.zeros((0, 3))).shape == (0, 3)


def test_soft_nms_thresholds_grow_with_the_width():
    # IoU 0.625 decays after a best of width 0.1 (threshold 0.55 + 0.35 * 0.1 = 0.585), not after
    # one of width 0.5 (threshold 0.725)
    narrow = soft_nms([[0.0, 0.1, 0.9], [0.0, 0.0625, 0.8], [0.8, 0.9, 0.01]])
    assert narrow[:, 2] == pytest.approx([0.9, 0.8 * math.exp(-0.625 ** 2 / 0.4)])
    wide = soft_nms([[0.0, 0.5, 0.9], [0.0, 0.3125, 0.8], [0.8, 0.9, 0.01]])
    assert wide[:, 2].tolist() == [0.9, 0.8]


def test_nms_by_hand():
    segments = [[0, 10], [1, 10], [20, 30], [0, 9]]
    # best [0, 9]: drops [0, 10] (IoU 0.9 > 0.8), keeps [1, 10] (IoU 0.8 exactly) and [20, 30]
    assert nms(segments, [0.9, 0.8, 0.7, 0.95], 0.8).tolist() == [3, 1, 2]
    assert nms(np.zeros((0, 2)), [], 0.5).tolist() == []


def test_gaussian_soft_nms_by_hand():
    keep, scores = gaussian_soft_nms([[0, 10], [0, 5], [20, 30]], [0.9, 0.5, 0.003], sigma=0.9, threshold=0.004)
    # [0, 5] decays by exp(-0.5^2 / 0.9); [20, 30] keeps its 0.003 and is dropped below 0.004
    assert keep.tolist() == [0, 1]
    assert scores == pytest.approx([0.9, 0.5 * math.exp(-0.25 / 0.9)])
    keep, scores = gaussian_soft_nms([[0, 1]], [0.002], sigma=0.9, threshold=0.004)
    assert keep.tolist() == [0] and scores.tolist() == [0.002]


def test_ctcn_detections_by_hand():
    segments = [[0, 0.5], [0.4, 0.6], [0, 0.45]]
    scores = [[0.5, 0.3, 0.2], [0.1, 0.0005, 0.8999], [0.2, 0.7, 0.1]]
    # class 0 (column 1): [0, 0.45] suppresses [0, 0.5] (IoU 0.9); [0.4, 0.6] is under the threshold.
    # class 1: NMS keeps [0.4, 0.6] and [0, 0.5]; soft-NMS decays [0, 0.5] (IoU 1/6).
    expected = [[0, 0.45, 0.7, 0], [0.4, 0.6, 0.8999, 1], [0, 0.5, 0.2 * math.exp(-1 / 36 / 0.9), 1]]
    assert ctcn_detections(segments, scores) == pytest.approx(np.array(expected))
    assert ctcn_detections(segments, scores, top_k=2) == pytest.approx(np.array([expected[1], expected[0]]))
    assert ctcn_detections(segments, scores, soft_sigma=None)[2, 2] == pytest.approx(0.2)
    assert ctcn_detections(segments, np.zeros((3, 3))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"class scores \[2, 3\] for 3 segments"):
        ctcn_detections(segments, scores[:2])


def test_pgm_proposals_by_hand():
    start, end = [0.2, 0.9, 0.1, 0.3], [0.1, 0.2, 0.8, 0.3]  # starts {0, 1, 3}, ends {2, 3}
    expected = np.array([[0.25, 0.75, 0.9, 0.8, 0.72], [0.25, 1.0, 0.9, 0.3, 0.27], [0, 0.75, 0.2, 0.8, 0.16],
                         [0.75, 1.0, 0.3, 0.3, 0.09], [0, 1.0, 0.2, 0.3, 0.06]])
    assert pgm_proposals(start, end, top_k=None) == pytest.approx(expected)
    assert pgm_proposals(start, end, top_k=3) == pytest.approx(expected[:3])
    assert pgm_proposals(start, end, top_k=None, max_duration=2) == pytest.approx(expected[[0, 3]])


def test_pgm_pads_with_seeded_random_pairs():
    start, end = np.array([0.2, 0.9, 0.1, 0.3]), np.array([0.1, 0.2, 0.8, 0.3])
    padded = pgm_proposals(start, end, top_k=12, seed=5)
    assert padded.shape == (12, 5)
    assert np.array_equal(padded, pgm_proposals(start, end, top_k=12, seed=5))
    first, last = np.rint(padded[:, 0] * 4).astype(int), np.rint(padded[:, 1] * 4).astype(int) - 1
    assert np.all(first <= last) and np.all(last < 4)
    assert padded[:, 4] == pytest.approx(start[first] * end[last])
    assert np.all(np.diff(padded[:, 4]) <= 0)


def test_candidate_ious_and_ioas_by_hand():
    proposals, gt = [[0, 0.5, 0.9], [0.4, 0.6, 0.1], [0.9, 1.0, 0.2]], [[0, 0.4], [0.5, 1.0]]
    assert candidate_ious(proposals, gt) == pytest.approx([0.8, 1 / 6, 0.2])
    assert candidate_ioas(proposals, gt) == pytest.approx([0.8, 0.5, 1.0])
    assert candidate_ious(proposals, np.zeros((0, 2))).tolist() == [0.0, 0.0, 0.0]


def reference_bsp(action, proposal, ratio=0.25, bins=(16, 8, 8), per=3):
    """The seed's recipe read literally: the padded curve, linear interpolation point by point."""
    tscale = len(action)
    gap, extend = 1.0 / tscale, int(tscale / 4 + 10)
    xs = ([-gap / 2 - (extend - 1 - i) * gap for i in range(extend)] + [gap / 2 + i * gap for i in range(tscale)]
          + [gap / 2 + 1.0 + i * gap for i in range(extend)])
    ys = [0.0] * extend + list(action) + [0.0] * extend

    def curve(x):
        k = bisect.bisect_right(xs, x) - 1
        if k == len(xs) - 1:
            return ys[k]
        return ys[k] + (ys[k + 1] - ys[k]) * (x - xs[k]) / (xs[k + 1] - xs[k])

    def part(a, b, n):
        width = (b - a) / (n - 1)
        points = [curve(a - width / 2 + width / per * i) for i in range(n * per + 1)]
        return [sum(points[i * per: (i + 1) * per + 1]) / (per + 1) for i in range(n)]

    xmin, xmax = proposal
    reach = (xmax - xmin) * ratio
    return (part(xmin, xmax, bins[0]) + part(xmin - reach, xmin + reach, bins[1])
            + part(xmax - reach, xmax + reach, bins[2]))


def test_bsp_features_of_a_constant_curve_inside_the_video():
    features = bsp_features(np.full(100, 0.7), [[0.3, 0.6]])
    assert features.shape == (1, 32)
    assert features == pytest.approx(np.full((1, 32), 0.7))


def test_bsp_features_match_the_recipe_read_literally():
    rng = np.random.default_rng(0)
    action = rng.random(100)
    proposals = np.array([[0.0, 0.2], [0.9, 1.0], [0.31, 0.32], [0.0, 1.0], [0.42, 0.77]])
    features = bsp_features(action, proposals)
    assert features == pytest.approx(np.array([reference_bsp(action, p) for p in proposals]), abs=1e-12)
    small = bsp_features(action[:20], proposals, num_sample_start=4, num_sample_end=5, num_sample_action=6,
                         num_sample_interpld=2, boundary_ratio=0.2)
    expected = [reference_bsp(action[:20], p, ratio=0.2, bins=(6, 4, 5), per=2) for p in proposals]
    assert small == pytest.approx(np.array(expected), abs=1e-12)
    assert bsp_features(action, np.zeros((0, 5))).shape == (0, 32)


def test_bsn_scores_and_to_seconds():
    candidates = np.array([[-0.1, 0.5, 0.5, 0.4, 0.2], [0.5, 1.2, 1.0, 0.5, 0.5]])
    fused = bsn_scores(candidates, [0.5, 0.2])
    assert fused == pytest.approx(np.array([[-0.1, 0.5, 0.1], [0.5, 1.2, 0.1]]))
    assert to_seconds(fused, 20.0) == pytest.approx(np.array([[0, 10, 0.1], [10, 20, 0.1]]))
    assert fused[0, 0] == -0.1  # unchanged


def test_bmn_chain_finds_the_ground_truth_first():
    tscale = 10
    start, end = np.full(tscale, 0.1), np.full(tscale, 0.1)
    start[2], end[4] = 0.9, 0.8  # a ground truth at [0.2, 0.5]
    confidence = np.full((2, tscale, tscale), 0.2)
    confidence[:, 2, 2] = 0.9  # duration index 2 at start 2 = [0.2, 0.5]
    kept = soft_nms(bmn_proposals(start, end, confidence))
    assert kept[0, :2] == pytest.approx([0.2, 0.5])
    evaluator = ProposalEvaluator()
    evaluator.update("v", [[20.0, 50.0]], to_seconds(kept, 100.0))
    assert evaluator.summary()["ar@1"] == 100.0


def test_result_file_is_sorted_rounded_and_versioned():
    records = [{"id": "b", "results": [{"segment": [1.23456, 2.0], "score": 0.1},
                                       {"segment": [0, 1], "score": 0.123456789}]}]
    results = activitynet_results(records, external_data={"used": False})
    assert results == {"version": "VERSION 1.3", "external_data": {"used": False}, "results": {"b": [
        {"segment": [0.0, 1.0], "score": 0.1234568}, {"segment": [1.235, 2.0], "score": 0.1}]}}
    assert activitynet_results([])["external_data"] == {}
    with pytest.raises(ValueError, match="'b' has two records"):
        activitynet_results(records * 2)
    entries = result_entries([[1, 2, 0.5, 1], [3, 4, 0.7, 0]], classes=["run", "jump"])
    assert entries == [{"segment": [3.0, 4.0], "score": 0.7, "label": "run"},
                       {"segment": [1.0, 2.0], "score": 0.5, "label": "jump"}]
    with pytest.raises(ValueError, match="need the class names"):
        result_entries([[1, 2, 0.5, 1]])
    with pytest.raises(ValueError, match="label index 2 is outside the 2 class names"):
        result_entries([[1, 2, 0.5, 2]], classes=["run", "jump"])


def random_videos(rng, count, labelled):
    """Videos with times on the millisecond grid and scores of 6 decimals: exact after rounding."""
    videos = []
    for v in range(count):
        k = int(rng.integers(1, 4))
        gt_start = rng.integers(0, 60_000, k)
        gt = np.stack([gt_start, gt_start + rng.integers(1_000, 20_000, k)], axis=1) / 1000
        p = int(rng.integers(0, 40))
        first = rng.integers(0, 70_000, p)
        rows = [first / 1000, (first + rng.integers(500, 25_000, p)) / 1000, rng.integers(0, 10**6, p) / 10**6]
        if labelled:
            rows.append(rng.integers(0, 3, p))
        videos.append((f"v{v}", gt, rng.integers(0, 3, k), np.stack(rows, axis=1)))
    return videos


def test_proposal_results_read_back_to_the_same_metrics(tmp_path):
    videos = random_videos(np.random.default_rng(1), 12, labelled=False)
    direct, read = ProposalEvaluator(), ProposalEvaluator()
    for video, gt, _, rows in videos:
        direct.update(video, gt, rows)
    file = tmp_path / "proposals.json"
    file.write_text(json.dumps(activitynet_results({"id": v, "results": result_entries(r)} for v, _, _, r in videos)))
    rows_read = read_activitynet_results(file)
    for video, gt, _, _ in videos:
        read.update(video, gt, rows_read[video])
    assert direct.summary() == read.summary()
    assert 0 < direct.summary()["auc"] < 99


def test_detection_results_read_back_to_the_same_metrics(tmp_path):
    classes = ["run", "jump", "swim"]
    videos = random_videos(np.random.default_rng(2), 12, labelled=True)
    direct, read = DetectionEvaluator(), DetectionEvaluator()
    for video, gt, labels, rows in videos:
        direct.update(video, gt, labels, rows)
    file = tmp_path / "detections.json"
    records = ({"id": v, "results": result_entries(r, classes=classes)} for v, _, _, r in videos)
    file.write_text(json.dumps(activitynet_results(records)))
    rows_read = read_activitynet_results(file, classes=classes)
    for video, gt, labels, _ in videos:
        read.update(video, gt, labels, rows_read[video])
    assert direct.summary() == read.summary()
    assert direct.summary()["map@0.5"] > 0
