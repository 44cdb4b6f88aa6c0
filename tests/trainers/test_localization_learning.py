"""The localization models learn synthetic ActivityNet data: held-out proposals (BMN, BSN) and
detections (C-TCN) beat the same pipeline with untrained weights by a wide margin.

The bars here are below what benchmarks/learn_localization.py measures over three seeds (see
docs/benchmarks.md), so that a slow or unlucky run still passes while a model that does not learn
fails.
"""

import time

import paddle
import pytest

from videotk.trainers import runtime
from videotk.trainers.config import load_config
from videotk.trainers.loop import build_model, evaluate_model, train
from videotk.trainers.tasks import make_task


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    from videotk.pipelines.activitynet import convert_activitynet
    from videotk.pipelines.synth_activitynet import synth_activitynet

    root = tmp_path_factory.mktemp("learn-anet")
    short = synth_activitynet(root / "short", num_videos=96, num_classes=4, tscale=64, feature_dim=64,
                              segments=(2, 5), segment_length=(0.03, 0.2), seed=11)
    convert_activitynet(short.snippet_dir, short.official_json, root / "snippets", tscale=64, workers=1)
    default = synth_activitynet(root / "default", num_videos=96, num_classes=4, tscale=64, feature_dim=64, seed=11)
    convert_activitynet(default.ctcn_dir, default.official_json, root / "scores", workers=1)
    return root


def untrained(config, cache) -> dict:
    task = make_task(config)
    runtime.prepare("cpu", cpu_threads=1, num_workers=0, seed=config.train.seed)
    paddle.seed(config.train.seed)
    return evaluate_model(build_model(config), task, task.open(cache), config)


def last(metrics: dict) -> dict:
    return metrics["final"] if "final" in metrics else metrics[max(k for k in metrics if isinstance(k, int))]


@pytest.mark.parametrize("model, overrides", [("bmn", ["train.epochs=10", "lr_scheduler.milestones=[8]"]),
                                              ("bsn", [])])
def test_proposal_models_learn_boundaries(caches, tmp_path, model, overrides):
    config = load_config(model, f"{model}_tiny", overrides)
    before = untrained(config, caches / "snippets")["auc"]
    start = time.perf_counter()
    result = train(config, caches / "snippets", valid_shards=caches / "snippets", save_dir=tmp_path / "run")
    after = last(result["metrics"])["auc"]
    losses = [h["loss"] for h in result["history"] if h.get("stage", "tem") == "tem"]
    assert losses[-1] < losses[0]
    assert after >= 55 and after >= 1.7 * before, (before, after, time.perf_counter() - start)


def test_ctcn_learns_to_detect_and_classify(caches, tmp_path):
    config = load_config("ctcn", "ctcn_tiny", ["train.epochs=14", "lr_scheduler.milestones=[12]"])
    before = untrained(config, caches / "scores")
    result = train(config, caches / "scores", valid_shards=caches / "scores", save_dir=tmp_path / "run")
    after = last(result["metrics"])
    assert after["average_map"] >= 0.2 and after["map@0.5"] >= 0.45, after
    assert after["average_map"] >= 2 * before["average_map"] and after["map@0.5"] >= 2 * before["map@0.5"]
