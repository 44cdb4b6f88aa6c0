"""Kinetics clip- and video-level top-1 / top-5 on views scored by hand."""

import numpy as np
import pytest

from videotk.evaluators.kinetics import KineticsEvaluator, top_k_hits

# Five views of three videos over 6 classes; the comment says where the label ranks (0 = first).
VIEWS = [  # (video, label, scores)
    (10, 2, [0.1, 0.2, 0.5, 0.1, 0.05, 0.05]),  # rank 0
    (20, 0, [0.1, 0.3, 0.2, 0.15, 0.15, 0.1]),  # rank 4: class 5 ties with 0.1 but ranks after class 0
    (10, 2, [0.4, 0.1, 0.3, 0.1, 0.05, 0.05]),  # rank 1
    (30, 5, [0.2, 0.2, 0.2, 0.2, 0.1, 0.1]),  # rank 5: class 4 ties with 0.1 and ranks before class 5
    (20, 0, [0.05, 0.3, 0.25, 0.2, 0.1, 0.1]),  # rank 5
]
# Video means: 10 -> [.25, .15, .4, .1, .05, .05] (label 2 first); 20 -> [.075, .3, .225, .175, .125, .1]
# (label 0 last, rank 5); 30 -> its one view (rank 5).


def columns(views):
    videos, labels, scores = zip(*views)
    return np.array(scores), np.array(labels), np.array(videos)


def test_top_k_hits_by_hand():
    scores, labels, _ = columns(VIEWS)
    assert top_k_hits(scores, labels, 1).tolist() == [True, False, False, False, False]
    assert top_k_hits(scores, labels, 5).tolist() == [True, True, True, False, False]
    equal = np.ones((2, 4))
    assert top_k_hits(equal, np.array([0, 3]), 1).tolist() == [True, False]
    assert top_k_hits(equal, np.array([0, 3]), 5).tolist() == [True, True]


def test_summary_by_hand_over_batches_with_losses():
    evaluator = KineticsEvaluator(6)
    evaluator.update(*columns(VIEWS[:2]), loss=1.0)
    evaluator.update(*columns(VIEWS[2:]), loss=2.0)
    summary = evaluator.summary()
    assert summary == pytest.approx({
        "clip_top1": 1 / 5, "clip_top5": 3 / 5, "video_top1": 1 / 3, "video_top5": 1 / 3,
        "num_clips": 5, "num_videos": 3, "avg_loss": (1.0 * 2 + 2.0 * 3) / 5,
    })


def test_batches_in_any_split_give_the_same_summary():
    once = KineticsEvaluator(6)
    once.update(*columns(VIEWS))
    one_by_one = KineticsEvaluator(6)
    for view in reversed(VIEWS):
        one_by_one.update(*columns([view]))
    assert once.summary() == pytest.approx(one_by_one.summary())
    assert "avg_loss" not in once.summary()


def test_video_scores_are_view_means_in_arrival_order():
    evaluator = KineticsEvaluator(6)
    evaluator.update(*columns(VIEWS))
    videos, scores, labels = evaluator.video_scores()
    assert videos.tolist() == [10, 20, 30] and labels.tolist() == [2, 0, 5]
    np.testing.assert_allclose(scores[0], [0.25, 0.15, 0.4, 0.1, 0.05, 0.05])
    np.testing.assert_allclose(scores[1], [0.075, 0.3, 0.225, 0.175, 0.125, 0.1])
    np.testing.assert_allclose(scores[2], VIEWS[3][2])


def test_many_videos_grow_the_accumulators():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    scores = rng.random((500, 7))
    evaluator = KineticsEvaluator(7)
    for start in range(0, 500, 30):
        evaluator.update(scores[start : start + 30], labels[start : start + 30], np.arange(start, min(start + 30, 500)))
    summary = evaluator.summary()
    assert summary["num_videos"] == summary["num_clips"] == 500
    assert summary["video_top1"] == summary["clip_top1"] == pytest.approx(np.mean(scores.argmax(1) == labels))


def test_empty_summary():
    assert KineticsEvaluator(3).summary() == {
        "clip_top1": 0.0, "clip_top5": 0.0, "video_top1": 0.0, "video_top5": 0.0, "num_clips": 0, "num_videos": 0,
    }


def test_reset_forgets_everything():
    evaluator = KineticsEvaluator(6)
    evaluator.update(*columns(VIEWS), loss=3.0)
    evaluator.reset()
    assert evaluator.summary()["num_clips"] == 0 and "avg_loss" not in evaluator.summary()


def test_bad_inputs_are_refused():
    evaluator = KineticsEvaluator(6)
    scores, labels, videos = columns(VIEWS)
    with pytest.raises(ValueError, match=r"scores must be \[N, 6\], got \[5, 5\]"):
        evaluator.update(scores[:, :5], labels, videos)
    with pytest.raises(ValueError, match="equal counts"):
        evaluator.update(scores, labels[:4], videos)
    with pytest.raises(ValueError, match="label -1 .*unlabelled"):
        evaluator.update(scores, np.full(5, -1), videos)
    with pytest.raises(ValueError, match="video 10: views labelled 2 and 3"):
        evaluator.update(scores[:3], np.array([2, 0, 3]), videos[:3])
    evaluator.update(scores[:1], labels[:1], videos[:1])
    with pytest.raises(ValueError, match="video 10: views labelled 2 and 4"):
        evaluator.update(scores[1:3], np.array([0, 4]), videos[1:3])
    assert evaluator.summary()["num_clips"] == 1 and evaluator.summary()["num_videos"] == 1
    with pytest.raises(ValueError, match="num_classes"):
        KineticsEvaluator(0)
