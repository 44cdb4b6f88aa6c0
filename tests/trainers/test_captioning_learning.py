"""ETS and TALL learn their synthetic data through the generic loop: the loss falls and the held-out
metric (BLEU-4 of the val_1 captions; R@1 at IoU 0.5 on the test movies) ends far above the same
model untrained, measured by the same code. Small data and few epochs; benchmarks/learn_captioning.py
runs the tiny configs in full over three seeds."""

import numpy as np
import paddle
import pytest

from videotk.pipelines.anet_captions import convert_anet_captions
from videotk.pipelines.synth_captions import synth_anet_captions, synth_tacos
from videotk.pipelines.tacos import convert_tacos
from videotk.trainers.config import load_config
from videotk.trainers.loop import build_model, evaluate, evaluate_model, train
from videotk.trainers.tasks import make_task


def untrained(config, cache) -> dict:
    task = make_task(config)
    opened = task.open(cache)
    paddle.seed(config.train.seed)
    return evaluate_model(build_model(config), task, opened, config)


def falls(history: list[dict], ratio: float) -> bool:
    """Whether the mean loss of the last tenth of the steps is below ``ratio`` x that of the first tenth."""
    losses = [h["loss"] for h in history]
    tenth = max(len(losses) // 10, 1)
    return np.mean(losses[-tenth:]) < ratio * np.mean(losses[:tenth])


def test_ets_learns_the_template_captions(tmp_path):
    raw = synth_anet_captions(tmp_path / "raw", videos=96, feature_dim=64, seed=11)
    convert_anet_captions(raw["features"], [raw["train"], raw["val_1"], raw["val_2"]], tmp_path / "cache", workers=1)
    config = load_config("ets", "ets_tiny", ["train.epochs=6", "eval.java=false"])
    before = untrained(config, tmp_path / "cache")
    result = train(config, tmp_path / "cache", save_dir=tmp_path / "run")
    after = evaluate(config, tmp_path / "cache", tmp_path / "run" / "epoch_005")
    assert falls(result["history"], 0.5)
    assert after["bleu_4"] >= 0.35 and after["bleu_4"] >= 2 * before["bleu_4"] + 0.2, (before, after)
    assert after["cider"] > 2 * before["cider"]


def test_tall_learns_to_ground_the_topics(tmp_path):
    raw = synth_tacos(tmp_path / "raw", movies=24, feature_dim=64, sentence_dim=48, seed=12)
    for subset in ("train", "test"):
        convert_tacos(raw[f"{subset}_windows"], raw[subset], tmp_path / subset, workers=1)
    config = load_config("tall", "tall_tiny", ["train.epochs=6"])
    before = untrained(config, tmp_path / "test")
    result = train(config, tmp_path / "train", save_dir=tmp_path / "run")
    after = evaluate(config, tmp_path / "test", tmp_path / "run" / "epoch_005")
    assert falls(result["history"], 0.85)  # the alignment term has a floor: log(1 + e^-s) over B^2 pairs
    key = "r@1,iou0.5"
    assert after[key] >= 0.4 and after[key] >= 2 * before[key], (before[key], after[key])


def test_the_ground_truth_scores_perfectly():
    from videotk.evaluators.grounding import GroundingEvaluator

    evaluator = GroundingEvaluator()
    for k, span in enumerate([[10, 200], [300, 420]]):
        evaluator.update(k, np.array(span), np.array([[*span, 1.0], [0, 50, 0.5]]))
    assert all(v == pytest.approx(1.0) for key, v in evaluator.summary().items() if key.startswith("r@"))
