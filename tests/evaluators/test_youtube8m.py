import numpy as np
import pytest

from videotk.evaluators import (
    YouTube8MEvaluator,
    global_average_precision,
    hit_at_one,
    mean_average_precision,
    multi_hot,
    precision_at_equal_recall_rate,
)

PREDICTIONS = np.array(
    [
        [0.9, 0.8, 0.1, 0.05],
        [0.2, 0.7, 0.6, 0.3],
        [0.5, 0.4, 0.3, 0.2],
    ]
)
LABELS = np.array(
    [
        [1, 0, 1, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ]
)


def reference_gap(predictions, labels, top_k):
    pool = []
    for scores, positives in zip(predictions, labels):
        ranked = sorted(range(len(scores)), key=lambda c: (-scores[c], c))[:top_k]
        pool += [(scores[c], positives[c]) for c in ranked]
    pool.sort(key=lambda entry: (-entry[0], entry[1]))
    found, total = 0, 0.0
    for rank, (_, positive) in enumerate(pool, start=1):
        if positive:
            found += 1
            total += found / rank
    return total / labels.sum()


def random_case(rng, num_videos=120, num_classes=30, decimals=None):
    labels = (rng.random((num_videos, num_classes)) < 0.1).astype(np.float32)
    labels[np.arange(num_videos), rng.integers(0, num_classes, num_videos)] = 1
    predictions = rng.random((num_videos, num_classes))
    if decimals is not None:
        predictions = np.round(predictions, decimals)
    return predictions, labels


def test_hit_at_one_counts_videos_whose_top_class_is_positive():
    assert hit_at_one(PREDICTIONS, LABELS) == pytest.approx(1 / 3)


def test_perr_scores_videos_without_positives_as_zero():
    assert precision_at_equal_recall_rate(PREDICTIONS, LABELS) == pytest.approx((1 / 2 + 0 + 0) / 3)


def test_gap_pools_top_k_and_counts_every_positive():
    assert global_average_precision(PREDICTIONS, LABELS, top_k=2) == pytest.approx((1 / 1 + 2 / 4) / 3)
    assert global_average_precision(PREDICTIONS, LABELS) == pytest.approx((1 / 1 + 2 / 4 + 3 / 11) / 3)


def test_map_averages_classes_that_have_positives():
    assert mean_average_precision(PREDICTIONS, LABELS, top_k=2) == pytest.approx((1 + (1 / 1) / 2) / 2)


def test_positives_outside_top_k_lower_gap():
    predictions = np.array([[0.9, 0.8, 0.7, 0.1, 0.0]])
    labels = np.array([[1, 1, 1, 0, 0]])
    assert global_average_precision(predictions, labels, top_k=2) == pytest.approx((1 / 1 + 2 / 2) / 3)
    assert global_average_precision(predictions, labels, top_k=3) == pytest.approx(1.0)


def test_ties_within_a_video_go_to_the_lower_class():
    predictions = np.array([[0.5, 0.9, 0.5, 0.5]])
    assert global_average_precision(predictions, np.array([[0, 0, 0, 1]]), top_k=2) == 0.0
    assert global_average_precision(predictions, np.array([[1, 0, 0, 0]]), top_k=2) == pytest.approx((1 / 2) / 1)
    flat = np.full((1, 4), 0.5)
    assert hit_at_one(flat, np.array([[0, 0, 1, 0]])) == 0.0
    assert precision_at_equal_recall_rate(flat, np.array([[1, 0, 0, 0]])) == 1.0


def test_pooled_ties_rank_negatives_first_in_any_video_order():
    predictions = np.array([[0.7, 0.2], [0.7, 0.2]])
    labels = np.array([[1, 0], [0, 1]])
    assert global_average_precision(predictions, labels, top_k=1) == pytest.approx((1 / 2) / 2)
    assert global_average_precision(predictions[::-1], labels[::-1], top_k=1) == pytest.approx((1 / 2) / 2)


def test_perr_counts_only_positive_scores():
    predictions = np.array([[-1.0, -2.0, -3.0]])
    labels = np.array([[1, 0, 0]])
    assert hit_at_one(predictions, labels) == 1.0
    assert precision_at_equal_recall_rate(predictions, labels) == 0.0


def test_gap_matches_a_plain_reference_with_many_ties():
    predictions, labels = random_case(np.random.default_rng(0), decimals=1)
    for top_k in (1, 5, 20, 50):
        expected = reference_gap(predictions, labels, top_k)
        assert global_average_precision(predictions, labels, top_k=top_k) == pytest.approx(expected)


def test_perfect_predictions_score_one_everywhere():
    _, labels = random_case(np.random.default_rng(1))
    evaluator = YouTube8MEvaluator()
    evaluator.update(labels.copy(), labels)
    summary = evaluator.summary()
    for key in ("hit_at_one", "perr", "gap", "map"):
        assert summary[key] == pytest.approx(1.0)


def test_batches_accumulate_to_the_all_at_once_metrics():
    predictions, labels = random_case(np.random.default_rng(2))
    evaluator = YouTube8MEvaluator(top_k=5)
    for start, stop in [(0, 7), (7, 37), (37, 38), (38, 120)]:
        evaluator.update(predictions[start:stop], labels[start:stop])
    summary = evaluator.summary()
    assert summary["num_examples"] == 120
    assert summary["hit_at_one"] == pytest.approx(hit_at_one(predictions, labels))
    assert summary["perr"] == pytest.approx(precision_at_equal_recall_rate(predictions, labels))
    assert summary["gap"] == pytest.approx(global_average_precision(predictions, labels, top_k=5))
    assert summary["map"] == pytest.approx(mean_average_precision(predictions, labels, top_k=5))
    assert "avg_loss" not in summary


def test_loss_is_averaged_per_video_and_reset_forgets():
    evaluator = YouTube8MEvaluator()
    evaluator.update(PREDICTIONS[:2], LABELS[:2], loss=2.0)
    evaluator.update(PREDICTIONS, LABELS, loss=np.array([1.0, 3.0, 5.0]))
    assert evaluator.summary()["avg_loss"] == pytest.approx((2.0 * 2 + 3.0 * 3) / 5)
    evaluator.reset()
    with pytest.raises(ValueError, match="update"):
        evaluator.summary()


def test_multi_hot_turns_index_lists_into_rows():
    expected = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(multi_hot([[0, 2], [], [3]], 4), expected)
    with pytest.raises(ValueError, match="video 1: label 4"):
        multi_hot([[0], [4]], 4)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        hit_at_one(PREDICTIONS, LABELS[:, :3])
    with pytest.raises(ValueError, match="0/1"):
        global_average_precision(PREDICTIONS, LABELS * 2)
    with pytest.raises(ValueError, match="top_k"):
        YouTube8MEvaluator(top_k=0)
    evaluator = YouTube8MEvaluator()
    evaluator.update(PREDICTIONS, LABELS)
    with pytest.raises(ValueError, match="classes"):
        evaluator.update(PREDICTIONS[:, :3], LABELS[:, :3])
