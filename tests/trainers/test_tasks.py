"""Every registered task through the generic loop: train, evaluate, predict, export, and predict
again from the export, with each of its models at the tiny config.

A new task family registers itself and adds how to make a small cache of its kind to
``CACHE_MAKERS``; ``test_every_task_has_test_data`` fails until it does.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import videotk
from videotk.models import list_models
from videotk.trainers.config import load_config
from videotk.formats import CacheError
from videotk.trainers.checkpoint import latest_checkpoint
from videotk.trainers.loop import evaluate, export, predict, train
from videotk.trainers.tasks import TASKS, make_task


def youtube8m_cache(root: Path) -> Path:
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    synth_youtube8m(root / "raw", num_files=2, videos_per_file=6, num_classes=10, min_frames=5, max_frames=30, seed=5)
    convert_youtube8m(root / "raw", root / "cache", workers=1)
    return root / "cache"


def kinetics_cache(root: Path) -> Path:
    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics

    csv = synth_kinetics(root / "raw", num_classes=4, clips_per_class=2, duration=1.0, width=96, height=64, seed=6)
    decode_kinetics(root / "raw", root / "cache", annotations=csv, short_side=64, fps=12.5, workers=1)
    return root / "cache"


def activitynet_raw(root: Path):
    from videotk.pipelines.synth_activitynet import synth_activitynet

    return synth_activitynet(root / "raw", num_videos=24, num_classes=4, tscale=64, feature_dim=64, seed=7)


def snippet_cache(root: Path) -> Path:
    """ActivityNet snippet features at 64 points of 64 dimensions (BMN's and BSN's tiny configs)."""
    from videotk.pipelines.activitynet import convert_activitynet

    raw = activitynet_raw(root)
    convert_activitynet(raw.snippet_dir, raw.official_json, root / "cache", tscale=64, workers=1)
    return root / "cache"


def scores_cache(root: Path) -> Path:
    """ActivityNet rgb and flow score sequences of 4 classes (C-TCN's tiny config)."""
    from videotk.pipelines.activitynet import convert_activitynet

    raw = activitynet_raw(root)
    convert_activitynet(raw.ctcn_dir, raw.official_json, root / "cache", workers=1)
    return root / "cache"


def anet_captions_cache(root: Path) -> Path:
    """ActivityNet Captions: 12 videos of 64-d frame features, train and val (ETS's tiny config, 12 words)."""
    from videotk.pipelines.anet_captions import convert_anet_captions
    from videotk.pipelines.synth_captions import synth_anet_captions

    raw = synth_anet_captions(root / "raw", videos=12, feature_dim=64, seed=8)
    convert_anet_captions(raw["features"], [raw["train"], raw["val_1"], raw["val_2"]], root / "cache", workers=1)
    return root / "cache"


def tacos_cache(root: Path) -> Path:
    """TACoS: 6 training movies of 64-d windows and 48-d sentences (TALL's tiny config)."""
    from videotk.pipelines.synth_captions import synth_tacos
    from videotk.pipelines.tacos import convert_tacos

    raw = synth_tacos(root / "raw", movies=8, min_frames=600, max_frames=800, feature_dim=64, sentence_dim=48, seed=9)
    convert_tacos(raw["train_windows"], raw["train"], root / "cache", workers=1)
    return root / "cache"


CACHE_MAKERS = {"youtube8m": youtube8m_cache, "kinetics": kinetics_cache, "bmn": snippet_cache,
                "bsn": snippet_cache, "ctcn": scores_cache, "captioning": anet_captions_cache,
                "grounding": tacos_cache}
#: models whose predictions come from a Python loop that paddle.jit.save does not capture
NOT_EXPORTABLE = {"ets"}
#: settings that keep a model's run short here (METEOR's jar takes about 13 s to start on this machine)
FAST = {"ets": ["eval.java=false"]}


@pytest.fixture(scope="module")
def task_cache(tmp_path_factory):
    made = {}

    def get(task: str) -> Path:
        if task not in made:
            made[task] = CACHE_MAKERS[task](tmp_path_factory.mktemp(task))
        return made[task]

    return get


def test_every_task_has_test_data():
    assert sorted(TASKS) == sorted(CACHE_MAKERS), "add a small cache of each new task kind to CACHE_MAKERS"


def test_generic_code_names_no_task():
    """The loop, checkpoints, config and the training CLI work through the task protocol only."""
    root = Path(videotk.__file__).parent
    generic = ["trainers/loop.py", "trainers/checkpoint.py", "trainers/config.py", "trainers/loader.py",
               "trainers/runtime.py", "trainers/optim.py", "trainers/logs.py", "cli/train.py"]
    for name in generic:
        text = (root / name).read_text(encoding="utf-8").lower()
        named = [task for task in TASKS if task in text]
        assert not named, f"{name} names the task(s) {named}"


def predicted(path: Path) -> list[dict]:
    """The records of a predictions file: JSON lines, or ActivityNet's result file."""
    text = path.read_text()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines()]
    return [{"id": video, "results": entries} for video, entries in whole["results"].items()]


@pytest.mark.parametrize("model", list_models())
def test_every_model_trains_evaluates_predicts_and_exports(tmp_path, task_cache, model):
    config = load_config(model, f"{model}_tiny", ["train.epochs=1", "train.batch_size=4", "eval.batch_size=4",
                                                 *FAST.get(model, [])])
    cache = task_cache(config.task)
    result = train(config, cache, valid_shards=cache, save_dir=tmp_path / "run")
    assert len(result["history"]) >= 2 and np.isfinite([h["loss"] for h in result["history"]]).all()
    task = make_task(config)
    checkpoint = latest_checkpoint(tmp_path / "run" / task.stages[-1]) if task.stages else tmp_path / "run" / "epoch_000"
    metrics = evaluate(config, cache, checkpoint)
    assert metrics and all(isinstance(v, (int, float, dict)) for v in metrics.values())

    count = predict(config, cache, checkpoint, tmp_path / "a.jsonl", top_k=3)
    assert count > 0
    if task.stages or model in NOT_EXPORTABLE:   # a numpy stage or a decoding loop: no single inference model
        with pytest.raises(CacheError, match="cannot be exported"):
            export(config, checkpoint, tmp_path / "exported")
        return
    export(config, checkpoint, tmp_path / "exported")
    assert predict(config, cache, tmp_path / "exported", tmp_path / "b.jsonl", top_k=3) == count
    a, b = predicted(tmp_path / "a.jsonl"), predicted(tmp_path / "b.jsonl")
    assert [x["id"] for x in a] == [x["id"] for x in b]
    if "classes" in a[0]:
        assert [x["classes"] for x in a] == [x["classes"] for x in b]
        np.testing.assert_allclose([x["scores"] for x in a], [x["scores"] for x in b], atol=1e-5)
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    again = {k: v for k, v in evaluate(config, cache, tmp_path / "exported").items() if not isinstance(v, dict)}
    assert again == pytest.approx(scalars, abs=1e-4)
