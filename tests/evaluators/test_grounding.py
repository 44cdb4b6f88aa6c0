"""Grounding recall by hand: temporal NMS (order, ties, the threshold that follows the IoU), R@n hits,
empty candidates, candidates pooled over updates."""

import numpy as np
import pytest

from videotk.evaluators import GroundingEvaluator, temporal_nms, window_candidates
from videotk.evaluators.grounding import metric_key, recall_hits


def test_nms_picks_best_first_and_drops_overlaps_above_the_threshold():
    starts, ends, scores = [0, 1, 20], [10, 11, 30], [0.9, 0.8, 0.7]  # overlap of the first two: 9 / 11
    assert temporal_nms(starts, ends, scores, 0.45) == [0, 2]
    assert temporal_nms(starts, ends, scores, 0.85) == [0, 1, 2]
    assert temporal_nms(starts, ends, scores, 9 / 11) == [0, 1, 2]
    assert temporal_nms([], [], [], 0.5) == []


def test_nms_ties_pick_the_later_candidate_first():
    assert temporal_nms([0, 50], [10, 60], [0.5, 0.5], 0.5) == [1, 0]
    assert temporal_nms([0, 0, 40], [10, 10, 45], [0.5, 0.5, 0.1], 0.5) == [1, 2]


def test_window_candidates_move_windows_by_their_offsets():
    windows = np.array([[0, 10], [5, 15]])
    outputs = np.array([[[0.3, 1, -1], [0.7, -2, 2]]])
    assert window_candidates(windows, outputs).tolist() == [[[1, 9, 0.3], [3, 17, 0.7]]]


def test_hits_by_hand():
    gt = np.array([0.0, 10.0])
    # picks at IoU 0.5 (NMS 0.45): c0 (IoU 0), c1 (IoU 0.9), c2 (IoU 5/15)
    candidates = np.array([[20, 30, 0.9], [0, 9, 0.8], [5, 15, 0.7]])
    assert recall_hits(gt, candidates, 0.5, (1, 2, 5)) == {1: False, 2: True, 5: True}
    assert recall_hits(gt, candidates, 0.3, (1, 2, 3)) == {1: False, 2: True, 3: True}
    assert recall_hits(gt, candidates, 0.95, (1, 5)) == {1: False, 5: False}
    assert recall_hits(gt, candidates[2:], 5 / 15, (1,)) == {1: True}


def test_nms_threshold_follows_the_iou():
    """c1 overlaps c0 by 9/11 = 0.82: suppressed at IoU 0.5 (NMS 0.45), kept at 0.9 (NMS 0.85), where it
    pushes the true span out of the top 2."""
    gt = np.array([0.0, 10.0])
    candidates = np.array([[30, 40, 0.9], [31, 41, 0.8], [0, 10, 0.7]])
    assert recall_hits(gt, candidates, 0.5, (2,)) == {2: True}
    assert recall_hits(gt, candidates, 0.9, (2,)) == {2: False}


def test_summary_keys_units_and_empty_candidates():
    evaluator = GroundingEvaluator()
    evaluator.update("s1", [0, 10], np.array([[20, 30, 0.9], [0, 9, 0.8], [5, 15, 0.7]]))
    evaluator.update("s2", [0, 10], np.zeros((0, 3)))
    summary = evaluator.summary()
    assert set(summary) == {metric_key(n, m) for n in (1, 5, 10) for m in (0.1, 0.3, 0.5, 0.7)} | {"num_sentences"}
    assert "r@1,iou0.5" in summary and "r@10,iou0.1" in summary
    assert summary["num_sentences"] == 2
    assert summary["r@1,iou0.5"] == 0.0
    assert summary["r@5,iou0.5"] == summary["r@5,iou0.7"] == summary["r@10,iou0.1"] == 0.5


def test_ground_truth_as_candidates_is_perfect():
    evaluator = GroundingEvaluator()
    rng = np.random.default_rng(0)
    for k in range(5):
        start = rng.uniform(0, 100)
        span = [start, start + rng.uniform(5, 50)]
        noise = np.column_stack([rng.uniform(0, 100, 9), rng.uniform(100, 200, 9), rng.uniform(0, 0.5, 9)])
        evaluator.update(k, span, np.vstack([noise, [*span, 1.0]]))
    assert all(value == 1.0 for key, value in evaluator.summary().items() if key.startswith("r@"))


def test_candidates_in_parts_equal_all_at_once():
    candidates = np.array([[20, 30, 0.9], [0, 9, 0.8], [5, 15, 0.7], [2, 8, 0.8]])
    whole, parts = GroundingEvaluator(), GroundingEvaluator()
    whole.update("s", [0, 10], candidates, loss=2.0)
    parts.update("s", [0, 10], candidates[:2], loss=1.0)
    parts.update("s", [0, 10], candidates[2:], loss=3.0)
    assert parts.summary() == whole.summary()
    parts.reset()
    assert parts.summary()["num_sentences"] == 0 and parts.summary()["r@1,iou0.5"] == 0.0


def test_bad_inputs_name_the_sentence():
    evaluator = GroundingEvaluator()
    with pytest.raises(ValueError, match="sentence 's': candidates must be"):
        evaluator.update("s", [0, 1], np.zeros((3, 2)))
    evaluator.update("s", [0, 1], np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"sentence 's': ground truth \[0.0, 2.0\] given after \[0.0, 1.0\]"):
        evaluator.update("s", [0, 2], np.zeros((0, 3)))
