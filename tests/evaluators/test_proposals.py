"""ActivityNet AR@AN and AUC on cases computed by hand, and against a literal loop over the
definition of ActivityNet's eval_proposal.py on random cases."""

import numpy as np
import pytest

from videotk.evaluators import Evaluator
from videotk.evaluators.proposals import (
    TIOU_THRESHOLDS,
    ProposalEvaluator,
    area_under_curve,
    average_recall_vs_num_proposals,
    plot_ar_an,
    read_activitynet_results,
    segment_iou,
)


def summary_of(videos):
    evaluator = ProposalEvaluator()
    for video in videos:
        evaluator.update(*video)
    return evaluator.summary()


def test_segment_iou_by_hand():
    ious = segment_iou([[0, 10], [5, 15], [20, 30]], [[0, 10], [2, 4]])
    assert ious == pytest.approx(np.array([[1.0, 0.2], [5 / 15, 0.0], [0.0, 0.0]]))


def test_perfect_proposals_reach_the_maximum_auc_of_99():
    videos = [(f"v{i}", [[i, i + 5.0]], [[i, i + 5.0, 1.0]]) for i in range(3)]
    summary = summary_of(videos)
    assert summary["auc"] == pytest.approx(99.0)
    assert [summary[f"ar@{k}"] for k in (1, 5, 10, 100)] == [100.0] * 4
    assert summary["curve"]["an"] == pytest.approx(list(range(1, 101)))
    assert summary["num_videos"] == 3 and summary["num_proposals"] == 3


# One video, two ground truths; the proposals by score: an exact hit of the first (IoU 1), the
# second at IoU 0.66, the second at IoU 0.88, and a miss. AN = j keeps the j best proposals.
PARTIAL = ("v", [[0, 10], [20, 30]], [[50, 60, 0.1], [21.2, 30, 0.7], [0, 10, 0.9], [20, 26.6, 0.8]])


def test_partial_overlaps_by_hand():
    an, recall, avg = average_recall_vs_num_proposals({"v": PARTIAL[1]}, {"v": np.array(PARTIAL[2])})
    assert an == pytest.approx(np.arange(1, 101))
    assert recall[:, 0] == pytest.approx([0.5] * 10)  # the first ground truth only
    assert recall[:, 1] == pytest.approx([1.0] * 4 + [0.5] * 6)  # IoU 0.66 >= 0.5, 0.55, 0.6, 0.65
    assert recall[:, 2] == pytest.approx([1.0] * 8 + [0.5] * 2)  # IoU 0.88 >= 0.5 ... 0.85
    assert recall[:, 3:] == pytest.approx(np.repeat(recall[:, 2:3], 97, axis=1))
    assert avg[:3] == pytest.approx([0.5, 0.7, 0.9])
    summary = summary_of([PARTIAL])
    # trapezoids: (0.5 + 0.7) / 2 + (0.7 + 0.9) / 2 + 97 * 0.9
    assert summary["auc"] == pytest.approx(0.6 + 0.8 + 97 * 0.9)
    assert [summary[f"ar@{k}"] for k in (1, 5, 10, 100)] == pytest.approx([50.0, 90.0, 90.0, 90.0])
    assert summary["curve"]["ar"][:3] == pytest.approx([50.0, 70.0, 90.0])


def test_equal_scores_keep_the_order_given():
    miss_first = ("v", [[0, 10]], [[50, 60, 0.5], [0, 10, 0.5]])
    hit_first = ("v", [[0, 10]], [[0, 10, 0.5], [50, 60, 0.5]])
    assert summary_of([miss_first])["ar@1"] == 0.0
    assert summary_of([hit_first])["ar@1"] == 100.0
    assert summary_of([miss_first])["ar@5"] == summary_of([hit_first])["ar@5"] == 100.0


def test_a_video_without_proposals_counts_its_ground_truth_as_missed():
    summary = summary_of([("a", [[0, 10]], [[0, 10, 0.9]]), ("b", [[5, 8]], np.zeros((0, 3)))])
    assert summary["ar@1"] == summary["ar@100"] == 50.0
    assert summary["auc"] == pytest.approx(0.5 * 99)
    assert summary["curve"]["an"] == pytest.approx(list(range(1, 101)))


def test_no_proposals_at_all_and_no_videos_at_all_give_zeros():
    summary = summary_of([("a", [[0, 10]], []), ("b", [[5, 8]], np.zeros((0, 3)))])
    assert summary["auc"] == 0.0 and summary["ar@100"] == 0.0
    assert summary["curve"]["an"] == pytest.approx(list(range(1, 101)))
    empty = ProposalEvaluator().summary()
    assert empty["auc"] == 0.0 and empty["ar@1"] == 0.0 and empty["num_videos"] == 0


def test_proposals_of_videos_without_ground_truth_count_in_the_average():
    # 4 proposals for "a", the hit last; 396 more for a video without ground truth make the average
    # 400 per video with ground truth, so "a" keeps int(4 * 100 / 400) = 1: the first, a miss.
    a = ("a", [[0, 10]], [[50, 60, 0.9], [60, 70, 0.8], [70, 80, 0.7], [0, 10, 0.6]])
    alone = summary_of([a])
    assert alone["ar@1"] == 0.0 and alone["ar@5"] == 100.0
    crowded = summary_of([a, ("c", np.zeros((0, 2)), np.tile([[1.0, 2.0, 0.5]], (396, 1)))])
    assert crowded["ar@100"] == 0.0 and crowded["num_videos"] == 2


def test_evaluator_follows_the_protocol_and_counts_losses():
    evaluator = ProposalEvaluator()
    assert isinstance(evaluator, Evaluator)
    evaluator.update(*PARTIAL, loss=2.0)
    evaluator.update("w", [[1, 2]], [[1, 2, 1.0]], loss=4.0)
    assert evaluator.summary()["avg_loss"] == 3.0
    with pytest.raises(ValueError, match="'w' given twice"):
        evaluator.update("w", [[1, 2]], [[1, 2, 1.0]])
    with pytest.raises(ValueError, match=r"proposals must be \[N, 3\]"):
        evaluator.update("x", [[1, 2]], [[1, 2]])
    evaluator.reset()
    assert evaluator.summary()["num_videos"] == 0


def reference_recall(ground_truth, proposals, max_avg=100, thresholds=TIOU_THRESHOLDS):
    """The definition of eval_proposal.py, one video and one point at a time."""
    videos = [v for v in ground_truth if len(ground_truth[v])]
    total = sum(len(p) for p in proposals.values())
    ratio = max_avg * len(videos) / total
    kept_lists, kept = {}, 0
    for v in videos:
        rows = sorted(proposals.get(v, []), key=lambda r: -r[2])
        n = min(int(len(rows) * ratio), len(rows))
        kept_lists[v] = rows[:n] if rows else None
        kept += n if rows else 0
    fractions = np.arange(1, 101) / 100.0 * (max_avg * len(videos) / kept)
    recall = np.zeros((len(thresholds), 100))
    positives = sum(len(ground_truth[v]) for v in videos)
    for t, threshold in enumerate(thresholds):
        for j, fraction in enumerate(fractions):
            found = 0
            for v in videos:
                rows = kept_lists[v]
                columns = 1 if rows is None else len(rows)
                look = min(int(columns * fraction), columns)
                for start, end in ground_truth[v]:
                    for row in (rows or [])[:look]:
                        inter = max(0.0, min(end, row[1]) - max(start, row[0]))
                        if inter / ((end - start) + (row[1] - row[0]) - inter) >= threshold:
                            found += 1
                            break
            recall[t, j] = found / positives
    return fractions * (kept / len(videos)), recall


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cases_match_a_literal_reading_of_the_definition(seed):
    rng = np.random.default_rng(seed)
    ground_truth, proposals = {}, {}
    for v in range(6):
        starts = rng.uniform(0, 80, rng.integers(0, 4))
        ground_truth[f"v{v}"] = np.stack([starts, starts + rng.uniform(1, 20, len(starts))], axis=1)
        count = int(rng.integers(0, 150))
        if count:
            first = rng.uniform(0, 90, count)
            proposals[f"v{v}"] = np.stack([first, first + rng.uniform(0.5, 30, count), rng.random(count)], axis=1)
    if not any(len(g) for g in ground_truth.values()):
        ground_truth["v0"] = np.array([[1.0, 5.0]])
    max_avg = [100, 20, 37][seed]
    an, recall, avg = average_recall_vs_num_proposals(ground_truth, proposals, max_avg_proposals=max_avg)
    expected_an, expected = reference_recall(ground_truth, {v: p.tolist() for v, p in proposals.items()}, max_avg)
    assert np.array_equal(recall, expected)
    assert an == pytest.approx(expected_an)
    assert avg == pytest.approx(expected.mean(axis=0))
    assert area_under_curve(an, avg) == pytest.approx(100 * np.sum(np.diff(an) * (avg[1:] + avg[:-1]) / 2) / an[-1])


def test_plot_ar_an_writes_an_image(tmp_path):
    curve = summary_of([PARTIAL])["curve"]
    plot_ar_an(curve, tmp_path / "ar_an.png")
    assert (tmp_path / "ar_an.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="100 AN values and 2 AR values"):
        plot_ar_an({"an": curve["an"], "ar": [1, 2]}, tmp_path / "bad.png")


def test_read_activitynet_results_names_the_file_and_entry(tmp_path):
    good = tmp_path / "results.json"
    good.write_text('{"version": "VERSION 1.3", "external_data": {}, "results": {"a": '
                    '[{"segment": [1, 2.5], "score": 0.5, "label": "jump"}]}}')
    assert read_activitynet_results(good)["a"].tolist() == [[1.0, 2.5, 0.5]]
    assert read_activitynet_results(good, classes=["run", "jump"])["a"].tolist() == [[1.0, 2.5, 0.5, 1.0]]
    with pytest.raises(ValueError, match=r"results.json: video 'a', entry 0: label 'jump' is not one of the 1"):
        read_activitynet_results(good, classes=["run"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"a": [{"segment": [1, 2]}]}}')
    with pytest.raises(ValueError, match=r"bad.json: video 'a', entry 0: expected"):
        read_activitynet_results(bad)
    bad.write_text('{"database": {}}')
    with pytest.raises(ValueError, match='bad.json: no "results" object'):
        read_activitynet_results(bad)
