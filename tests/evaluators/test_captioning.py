"""Captioning metrics: hand cases without Java, pairing by tIoU over both reference sets, the Python
tokenizer against the PTB jar, METEOR 1.5 through the real jar (one run), and Java missing."""

import logging
import random
import shutil

import numpy as np
import pytest

from videotk.evaluators import CaptioningEvaluator
from videotk.evaluators.captioning import (
    JAVA_MISSING,
    JAVA_OFF,
    Reference,
    ptb_tokenize,
    python_tokenize,
    tiou,
    video_pairs,
)

SENTENCES = ["A man is playing the guitar on a stage.", "Two dogs run across a wide green field.",
             "She pours hot water into a small cup."]
SPANS = [[0.0, 10.0], [12.0, 20.0], [25.0, 40.0]]

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not on PATH")


def refs(spans, sentences):
    return (np.asarray(spans, float), sentences)


def test_identical_captions_score_full_marks():
    evaluator = CaptioningEvaluator(java=False)
    evaluator.update("v1", SPANS, SENTENCES, [refs(SPANS, SENTENCES), refs([], [])])
    summary = evaluator.summary()
    assert set(summary) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider", "num_videos", "num_segments"}
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        assert summary[key] == pytest.approx(1.0, abs=1e-6), key
    # CIDEr-D's 10 x cosine similarity; its document frequencies come from the video's own pairs
    assert summary["cider"] == pytest.approx(10.0, rel=1e-6)
    assert summary["num_videos"] == 1 and summary["num_segments"] == 3


def test_a_video_without_predictions_scores_zero():
    evaluator = CaptioningEvaluator(java=False)
    evaluator.update("v1", SPANS, SENTENCES, [refs(SPANS, SENTENCES)])
    evaluator.update("v2", np.zeros((0, 2)), [], [refs([[0, 5]], ["a cat sleeps on the sofa"])])
    summary = evaluator.summary()
    assert summary["bleu_4"] == pytest.approx(0.5, abs=1e-6)
    assert summary["num_videos"] == 2


def test_unrelated_caption_scores_low():
    evaluator = CaptioningEvaluator(java=False)
    evaluator.update("v1", [[0, 10]], ["a man is playing the guitar"], [refs([[0, 10]], ["the cat is on the roof"])])
    summary = evaluator.summary()
    # 2 of 6 unigrams match ("is", "the"); no 2-gram does
    assert summary["bleu_1"] == pytest.approx(2 / 6, rel=1e-6)
    assert summary["bleu_4"] < 1e-3
    assert summary["rouge_l"] == pytest.approx(2 / 6, rel=1e-6)


def test_pairs_take_every_reference_of_every_set_above_the_tiou():
    references = [Reference(np.array([[0.0, 10.0]]), ("first set",)),
                  Reference(np.array([[0.0, 5.0], [20.0, 30.0]]), ("half overlap", "elsewhere"))]
    rng = random.Random(0)
    spans, sentences = np.array([[0.0, 10.0]]), ["prediction"]
    assert video_pairs(spans, sentences, references, 0.3, rng) == [("prediction", "first set"),
                                                                  ("prediction", "half overlap")]
    # 5 / (10 + 1e-8): just below 0.5, as in the densevid evaluator
    assert tiou([0, 10], [0, 5]) < 0.5
    assert video_pairs(spans, sentences, references, 0.5, rng) == [("prediction", "first set")]


def test_a_prediction_overlapping_nothing_meets_a_seeded_random_string():
    references = [Reference(np.array([[50.0, 60.0]]), ("far away",))]
    pairs = video_pairs(np.array([[0.0, 10.0]]), ["prediction"], references, 0.3, random.Random(3))
    assert pairs == video_pairs(np.array([[0.0, 10.0]]), ["prediction"], references, 0.3, random.Random(3))
    (prediction, garbage), = pairs
    assert prediction == "prediction" and garbage.isalpha() and garbage.islower() and 10 <= len(garbage) <= 20


def test_updates_in_parts_equal_one_update():
    references = [refs(SPANS, SENTENCES), refs([[0, 12]], ["a man plays a guitar"])]
    predictions = ["a man plays the guitar", "two dogs run in a field", "she pours water"]
    whole, parts = CaptioningEvaluator(java=False), CaptioningEvaluator(java=False)
    whole.update("v", SPANS, predictions, references)
    for span, sentence in zip(SPANS, predictions):
        parts.update("v", [span], [sentence], references)
    assert parts.summary() == whole.summary()
    with pytest.raises(ValueError, match="video 'v': references differ"):
        parts.update("v", [SPANS[0]], ["x"], references[:1])
    with pytest.raises(ValueError, match="video 'w': 1 timestamps and 2 sentences"):
        parts.update("w", [SPANS[0]], ["x", "y"], references)


def test_python_tokenizer_by_hand():
    assert python_tokenize("A man, in a red hat, plays the guitar!") == "a man in a red hat plays the guitar"
    assert python_tokenize("It's done... don't (ok)") == "it 's done do n't -lrb- ok -rrb-"
    assert python_tokenize('He went to the U.S. "today".') == "he went to the u.s. today"
    assert python_tokenize("caf\u00e9") == "caf\u00e9"


def test_java_missing_keeps_the_other_metrics(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    evaluator = CaptioningEvaluator()
    assert not evaluator.java and evaluator.warning == JAVA_MISSING
    assert "\n" not in evaluator.warning
    evaluator.update("v1", SPANS, SENTENCES, [refs(SPANS, SENTENCES)])
    with caplog.at_level(logging.WARNING, logger="videotk.evaluators.captioning"):
        summary = evaluator.summary()
    assert "meteor" not in summary
    assert summary["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert JAVA_MISSING in caplog.text


def test_java_switched_off_says_so_rather_than_missing():
    evaluator = CaptioningEvaluator(java=False)
    assert not evaluator.java and evaluator.warning == JAVA_OFF


@needs_java
def test_meteor_through_the_jar_and_the_ptb_tokenizer():
    sentences = [*SENTENCES, "It's a dog's life... really -- yes; no: maybe?", 'A man (ok) "quoted" don\'t!']
    assert ptb_tokenize(sentences) == [python_tokenize(s) for s in sentences]
    evaluator = CaptioningEvaluator()
    assert evaluator.java and evaluator.warning is None
    evaluator.update("same", SPANS, SENTENCES, [refs(SPANS, SENTENCES)])
    evaluator.update("other", [[0, 10]], ["the cat sleeps"], [refs([[0, 10]], ["two dogs run quickly"])])
    summary = evaluator.summary()
    assert 0.49 < summary["meteor"] <= 0.5  # nearly 1 for the first video (one chunk per pair), 0 for the second
    assert summary["bleu_4"] == pytest.approx(0.5, abs=1e-3)
