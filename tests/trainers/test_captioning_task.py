"""The ETS task on a real ActivityNet Captions cache: events as samples, padded batches, the
vocabulary check, evaluation against both reference sets, the result file and one file's segment."""

import json
import logging

import numpy as np
import paddle
import pytest

from videotk.formats import CacheError, open_cache
from videotk.pipelines.anet_captions import convert_anet_captions
from videotk.pipelines.synth_captions import synth_anet_captions
from videotk.trainers.config import load_config
from videotk.trainers.loop import build_model, evaluate, predict, predict_files, train
from videotk.trainers.tasks import CacheKindError, make_task
from videotk.trainers.tasks.captioning import caption_text, frame_span

FAST = ["eval.java=false", "train.epochs=1", "eval.batch_size=8"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth_anet_captions(tmp_path_factory.mktemp("anet") / "raw", videos=12, feature_dim=64, seed=3)


@pytest.fixture(scope="module")
def cache(raw):
    out = raw["train"].parent.parent / "cache"
    convert_anet_captions(raw["features"], [raw["train"], raw["val_1"], raw["val_2"]], out, workers=1)
    return out


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(load_config("ets", "ets_tiny", FAST), cache, save_dir=run)
    return run / "epoch_000"


def config(*overrides):
    return load_config("ets", "ets_tiny", [*FAST, *overrides])


def test_frame_span_is_the_seed_slice():
    assert frame_span(1.05, 2.55, 5.0, 100) == (int(1.05 * 5), int(2.55 * 5 + 0.5))
    assert frame_span(0.0, 30.0, 5.0, 20) == (0, 20)
    first, stop = frame_span(10.0, 12.0, 5.0, 20)
    assert stop == first  # past the last frame: empty


def test_one_training_sample_per_event_with_its_frames_and_caption(cache):
    task = make_task(config())
    store = open_cache(cache)
    loader = task.loader(task.open(cache), batch_size=4, num_workers=0, train=False)
    train_loader = task.loader(store, batch_size=4, num_workers=0, train=True)
    records = [store[i] for i in range(len(store))]
    events = sum(len(r["segments"]) for r in records if r["subset"] == "train")
    assert train_loader.samples == events
    batches = list(train_loader)
    assert len(batches) == train_loader.steps and sum(int(b["index"].shape[0]) for b in batches) == events
    batch = batches[0]
    row, index, event = 0, int(batch["index"][0]), int(batch["event"][0])
    record = records[index]
    first, stop = frame_span(*record["segments"][event], 5.0, record["num_frames"])
    frames = int(batch["frames"][row])
    assert frames == stop - first
    np.testing.assert_array_equal(batch["features"][row, :frames].numpy(), record["features"][first:stop])
    assert not batch["features"][:, :][row, frames:].numpy().any()
    offsets = np.concatenate([[0], np.cumsum(record["caption_lengths"])])
    ids = record["caption_ids"][offsets[event]: offsets[event + 1]]
    length = int(batch["length"][row])
    assert batch["words"][row, :length].numpy().tolist() == [0, *ids]
    assert batch["targets"][row, :length].numpy().tolist() == [*ids, 1]
    words = caption_text(batch["targets"][row].numpy().tolist(), store.classes)
    assert words == record["tokens"][event]
    assert len(list(loader)) == loader.steps > 0


def test_the_vocabulary_must_be_the_models(cache):
    with pytest.raises(CacheError, match=r"vocabulary of 12 words, but model.vocab_size is 30; set -o model.vocab_size=12"):
        make_task(config("model.vocab_size=30")).open(cache)
    with pytest.raises(CacheError, match=r"set -o model.vocab_size=12"):
        train(load_config("ets", None, []), cache, save_dir=cache.parent / "seed_run")


def test_subsets_without_events_are_refused_before_predicting(cache, trained, tmp_path):
    with pytest.raises(CacheError, match=r"no video of the subsets test has an event of reference set 1; set -o "
                                         r"data.eval_subsets"):
        predict(config("data.eval_subsets=[test]"), cache, trained, tmp_path / "none.json")


def test_a_cache_of_another_kind_names_the_command(tmp_path):
    from videotk.pipelines.synth_captions import synth_tacos
    from videotk.pipelines.tacos import convert_tacos

    raw = synth_tacos(tmp_path / "raw", movies=2, test_fraction=0.5, min_frames=512, max_frames=520, feature_dim=4,
                      sentence_dim=4, seed=1)
    convert_tacos(raw["test_windows"], raw["test"], tmp_path / "cache", workers=1)
    with pytest.raises(CacheKindError, match=r"a 'tacos' cache, but ets reads 'anet_captions' caches: .*"
                                             r"`vtk convert anet-captions`"):
        make_task(config()).open(tmp_path / "cache")


def test_evaluation_scores_the_val_1_segments_against_both_sets_and_says_java_is_off(cache, trained, caplog):
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(config(), cache, trained)
    assert {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider", "avg_loss"} <= set(metrics)
    assert "meteor" not in metrics
    assert any("Java is switched off" in r.getMessage() for r in caplog.records)   # FAST sets eval.java=false
    store = open_cache(cache)
    val = [store[i] for i in range(len(store)) if store[i]["subset"] == "val"]
    assert metrics["num_videos"] == len(val)
    assert metrics["num_segments"] == sum(int((np.asarray(r["reference"]) == 1).sum()) for r in val)
    greedy = evaluate(config("eval.decoding=greedy"), cache, trained)
    assert set(greedy) == set(metrics)


def ground_truth_summary(task, videos) -> dict:
    """The metrics of the val_1 sentences given as the captions of ``videos``."""
    evaluator = task.evaluator()
    for video in videos:
        first = video.reference == 1
        evaluator.metric.update(video.id, video.segments[first], list(np.asarray(video.sentences)[first]),
                                video.references())
    return evaluator.summary()


def test_ground_truth_captions_score_high_and_a_missing_video_zero(cache):
    from videotk.evaluators.captioning import CaptioningEvaluator

    task = make_task(config())
    task.dataset(task.open(cache), train=False)
    videos = task.evaluated_videos()
    full, partial = ground_truth_summary(task, videos), ground_truth_summary(task, videos[1:])
    alone = CaptioningEvaluator(java=False)
    first = videos[0].reference == 1
    alone.update(videos[0].id, videos[0].segments[first], list(np.asarray(videos[0].sentences)[first]),
                 videos[0].references())
    assert full["bleu_4"] > 0.5 and partial["num_videos"] == full["num_videos"] == len(videos)
    assert partial["bleu_4"] == pytest.approx(full["bleu_4"] - alone.summary()["bleu_4"] / len(videos), abs=1e-9)


def test_predictions_are_an_activitynet_captions_result_file(cache, trained, tmp_path):
    out = tmp_path / "captions.json"
    count = predict(config(), cache, trained, out)
    document = json.loads(out.read_text())
    assert set(document) == {"version", "results", "external_data"}
    assert document["version"] == "VERSION 1.0" and count == len(document["results"])
    store = open_cache(cache)
    val = {r["id"]: r for r in (store[i] for i in range(len(store))) if r["subset"] == "val"}
    assert set(document["results"]) == set(val)
    for video, entries in document["results"].items():
        first = np.asarray(val[video]["reference"]) == 1
        np.testing.assert_allclose([e["timestamp"] for e in entries], np.asarray(val[video]["segments"])[first], atol=1e-6)
        assert all(isinstance(e["sentence"], str) and "<e>" not in e["sentence"] for e in entries)


def test_one_feature_file_and_segment(raw, trained):
    path = str(min(raw["features"].iterdir()))
    frames = np.load(path).shape[0]
    (file, record), = predict_files(config(), trained, [path], options={"segment": (0.5, 3.0)})
    assert file == path and record["results"][0]["timestamp"] == [0.5, 3.0]
    assert isinstance(record["results"][0]["sentence"], str)
    (_, reason), = predict_files(config(), trained, [path], options={"segment": (frames, frames + 5.0)})
    assert reason.startswith(f"segment {frames}-{frames + 5} s holds no frame")


def test_export_is_refused_in_one_line(trained, tmp_path):
    from videotk.trainers.loop import export

    with pytest.raises(CacheError, match="ets cannot be exported: its captions come from beam search"):
        export(config(), trained, tmp_path / "exported")


def test_decoders_return_ids_after_bos(cache):
    paddle.seed(0)
    model = build_model(config())
    features = paddle.randn([2, 4, 64])
    for ids in model.beam_search(features, None, beam=3, max_length=5) + model.greedy(features, None, max_length=5):
        assert 1 <= len(ids) <= 5 and all(0 <= i < 12 for i in ids)
