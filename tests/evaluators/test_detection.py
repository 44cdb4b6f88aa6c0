"""ActivityNet detection mAP on cases computed by hand, and against a literal loop over the
definition of ActivityNet's eval_detection.py on random cases."""

import numpy as np
import pytest

from videotk.evaluators import Evaluator
from videotk.evaluators.detection import (
    DetectionEvaluator,
    detection_average_precision,
    interpolated_average_precision,
    map_key,
)
from videotk.evaluators.proposals import TIOU_THRESHOLDS

KEYS = ["map@0.5", "map@0.55", "map@0.6", "map@0.65", "map@0.7", "map@0.75", "map@0.8", "map@0.85", "map@0.9",
        "map@0.95"]


def summary_of(videos):
    evaluator = DetectionEvaluator()
    for video in videos:
        evaluator.update(*video)
    return evaluator.summary()


def test_keys_name_the_ten_thresholds():
    assert [map_key(t) for t in TIOU_THRESHOLDS] == KEYS


def test_interpolated_average_precision_by_hand():
    # precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1: made non-increasing -> 1, 2/3, 2/3, 1/2
    assert interpolated_average_precision([1, 0.5, 2 / 3, 0.5], [0.5, 0.5, 1, 1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert interpolated_average_precision([0, 0.5], [0, 1]) == pytest.approx(0.5)
    assert interpolated_average_precision([], []) == 0.0


def test_perfect_detections_score_one_everywhere():
    summary = summary_of([("a", [[0, 10], [20, 30]], [0, 1], [[0, 10, 0.9, 0], [20, 30, 0.8, 1]]),
                          ("b", [[5, 6]], [1], [[5, 6, 0.7, 1]])])
    assert [summary[k] for k in KEYS] == [1.0] * 10
    assert summary["average_map"] == 1.0
    assert summary["num_classes"] == 2 and summary["num_detections"] == 3 and summary["num_videos"] == 2


# One class, one video with two ground truths; detections by score: an exact hit of the first
# (IoU 1), a duplicate of it (IoU 0.9), the second at IoU 0.66, and a miss.
PARTIAL = ("v", [[0, 10], [20, 30]], [0, 0],
           [[50, 60, 0.6, 0], [20, 26.6, 0.7, 0], [0, 10, 0.9, 0], [1, 10, 0.8, 0]])
# tIoU <= 0.65: TP FP TP FP -> precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1 -> AP 1/2 + 1/2 * 2/3.
# tIoU >= 0.7: TP FP FP FP (the duplicate finds its ground truth taken) -> AP 1/2.
PARTIAL_AP = [0.5 + 1 / 3] * 4 + [0.5] * 6


def test_partial_overlaps_by_hand():
    summary = summary_of([PARTIAL])
    assert [summary[k] for k in KEYS] == pytest.approx(PARTIAL_AP)
    assert summary["average_map"] == pytest.approx((4 * (5 / 6) + 6 * 0.5) / 10)


def test_a_class_without_detections_has_ap_zero_and_one_absent_from_the_truth_is_left_out():
    segments, labels, detections = PARTIAL[1] + [[40, 45]], PARTIAL[2] + [3], PARTIAL[3] + [[70, 80, 0.99, 7]]
    evaluator = DetectionEvaluator()
    evaluator.update("v", segments, labels, detections)
    classes, ap = evaluator.average_precision()
    assert classes.tolist() == [0, 3]
    assert ap[:, 1].tolist() == [0.0] * 10
    summary = evaluator.summary()
    assert [summary[k] for k in KEYS] == pytest.approx([a / 2 for a in PARTIAL_AP])
    assert summary["num_classes"] == 2


def test_equal_scores_rank_in_the_order_given_across_videos():
    hit, miss = ("a", [[0, 10]], [0], [[0, 10, 0.5, 0]]), ("b", [], [], [[0, 10, 0.5, 0]])
    assert summary_of([miss, hit])["average_map"] == pytest.approx(0.5)  # FP then TP
    assert summary_of([hit, miss])["average_map"] == pytest.approx(1.0)  # TP then FP
    # within a video, too
    assert summary_of([("a", [[0, 10]], [0], [[50, 60, 0.5, 0], [0, 10, 0.5, 0]])])["map@0.5"] == pytest.approx(0.5)


def test_detections_in_videos_without_ground_truth_are_false_positives():
    summary = summary_of([("a", [[0, 10]], [0], [[0, 10, 0.8, 0]]), ("b", np.zeros((0, 2)), [], [[3, 4, 0.9, 0]])])
    assert summary["average_map"] == pytest.approx(0.5)


def test_no_detections_and_no_ground_truth_give_zeros():
    summary = summary_of([("a", [[0, 10]], [0], np.zeros((0, 4))), ("b", [[1, 2]], [0], [])])
    assert summary["average_map"] == 0.0 and summary["map@0.5"] == 0.0 and summary["num_classes"] == 1
    empty = DetectionEvaluator().summary()
    assert empty["average_map"] == 0.0 and empty["num_classes"] == 0 and empty["num_videos"] == 0


def test_evaluator_follows_the_protocol_and_checks_its_inputs():
    evaluator = DetectionEvaluator()
    assert isinstance(evaluator, Evaluator)
    evaluator.update(*PARTIAL, loss=1.0)
    evaluator.update("w", [[1, 2]], [0], [[1, 2, 1.0, 0]], loss=3.0)
    assert evaluator.summary()["avg_loss"] == 2.0
    with pytest.raises(ValueError, match="'w' given twice"):
        evaluator.update("w", [[1, 2]], [0], [])
    with pytest.raises(ValueError, match="'x': 1 ground-truth segments and 2 labels"):
        evaluator.update("x", [[1, 2]], [0, 1], [])
    with pytest.raises(ValueError, match="whole numbers"):
        evaluator.update("y", [[1, 2]], [0], [[1, 2, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"detections must be \[N, 4\]"):
        evaluator.update("z", [[1, 2]], [0], [[1, 2, 0.5]])


def reference_ap(truth, found, thresholds=TIOU_THRESHOLDS):
    """The definition of eval_detection.py, one detection and one ground truth at a time:
    ``truth`` [(video, start, end, label)], ``found`` [(video, start, end, score, label)]."""
    classes = sorted({label for *_, label in truth})
    ap = np.zeros((len(thresholds), len(classes)))
    for c, label in enumerate(classes):
        gts = [(v, s, e) for v, s, e, lab in truth if lab == label]
        dets = sorted([(v, s, e, p) for v, s, e, p, lab in found if lab == label], key=lambda d: -d[3])
        for t, threshold in enumerate(thresholds):
            taken, hits = set(), []
            for v, s, e, _ in dets:
                candidates = []
                for g, (gv, gs, ge) in enumerate(gts):
                    if gv == v:
                        inter = max(0.0, min(e, ge) - max(s, gs))
                        candidates.append((inter / ((e - s) + (ge - gs) - inter), g))
                hit = False
                for iou, g in sorted(candidates, key=lambda x: -x[0]):
                    if iou < threshold:
                        break
                    if g not in taken:
                        taken.add(g)
                        hit = True
                        break
                hits.append(hit)
            if not hits:
                continue
            tp = np.cumsum(hits)
            precision, recall = tp / np.arange(1, len(hits) + 1), tp / len(gts)
            # VOC 2011: area under the precision envelope, step by step in recall
            area, previous = 0.0, 0.0
            for i in range(len(hits)):
                if recall[i] != previous:
                    area += (recall[i] - previous) * max(precision[i:])
                    previous = recall[i]
            ap[t, c] = area
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_cases_match_a_literal_reading_of_the_definition(seed):
    rng = np.random.default_rng(seed)
    truth, found, videos = [], [], []
    for v in range(8):
        k = int(rng.integers(0, 4))
        starts = rng.uniform(0, 50, k)
        gt = np.stack([starts, starts + rng.uniform(2, 20, k)], axis=1)
        labels = rng.integers(0, 4, k)
        # detections near the ground truth (jittered copies) and random ones
        near = gt[rng.integers(0, k, 6)] + rng.normal(0, 1.5, (6, 2)) if k else np.zeros((0, 2))
        first = rng.uniform(0, 60, 5)
        segments = np.concatenate([near, np.stack([first, first + rng.uniform(1, 15, 5)], axis=1)])
        segments.sort(axis=1)
        rows = np.column_stack([segments, rng.random(len(segments)), rng.integers(0, 5, len(segments))])
        videos.append((f"v{v}", gt, labels, rows))
        truth += [(f"v{v}", s, e, lab) for (s, e), lab in zip(gt.tolist(), labels.tolist())]
        found += [(f"v{v}", *row[:3], int(row[3])) for row in rows.tolist()]
    classes, ap = detection_average_precision({v: (g, lab) for v, g, lab, _ in videos}, {v: r for v, _, _, r in videos})
    assert classes.tolist() == sorted({lab for *_, lab in truth})
    assert ap == pytest.approx(reference_ap(truth, found), abs=1e-12)
    assert ap.max() > 0
