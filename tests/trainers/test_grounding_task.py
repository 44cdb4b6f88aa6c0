"""The TALL task on real TACoS caches: training pairs and context windows, batches of distinct
clips with every pair once per epoch, test windows, the checks, and the moments file."""

import json

import numpy as np
import pytest

from videotk.formats import CacheError, open_cache
from videotk.pipelines.synth_captions import synth_tacos
from videotk.pipelines.tacos import convert_tacos
from videotk.trainers.config import load_config
from videotk.trainers.loop import predict, train
from videotk.trainers.tasks import make_task
from videotk.trainers.tasks.grounding import context_rows, training_pairs


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("tacos")
    raw = synth_tacos(root / "raw", movies=8, min_frames=600, max_frames=900, feature_dim=64, sentence_dim=48, seed=4)
    for subset in ("train", "test"):
        convert_tacos(raw[f"{subset}_windows"], raw[subset], root / subset, workers=1)
    return root / "train", root / "test"


def config(*overrides):
    return load_config("tall", "tall_tiny", ["train.epochs=1", *overrides])


def test_pairs_follow_the_iou_and_non_iol_rule():
    windows = np.array([[0, 100], [10, 110], [0, 200], [50, 150], [300, 400]])
    spans = np.array([[0, 100], [40, 180]])
    found = {tuple(p) for p in training_pairs(windows, spans).tolist()}
    # sentence 0: [0, 100] (IoU 1), [10, 110] (IoU 0.82, non-IoL 0.1); [0, 200] has IoU 0.5 (not above)
    # sentence 1: [50, 150] (IoU 0.71, non-IoL 0); [0, 200] has IoU 0.7 but non-IoL 0.3
    assert found == {(0, 0), (0, 1), (1, 3)}


def test_context_windows_are_the_adjacent_ones_or_the_window_itself():
    windows = np.array([[0, 128], [128, 256], [256, 384], [100, 356]])
    left, right = context_rows(windows)
    assert left.tolist() == [0, 0, 1, 3] and right.tolist() == [1, 2, 2, 3]


def pair_keys(batch, records) -> list[tuple]:
    """(movie, clip start, clip end, window start) of each pair of a training batch."""
    keys = []
    for visual, offsets, index in zip(batch["visual"].numpy(), batch["offsets"].numpy(), batch["index"].numpy()):
        record = records[int(index)]
        row = int(np.flatnonzero((np.asarray(record["window_features"]) == visual[64:128]).all(axis=1))[0])
        window = np.asarray(record["windows"])[row]
        keys.append((int(index), *(window + offsets).astype(int).tolist(), int(window[0])))
    return keys


def test_every_pair_once_per_epoch_in_batches_of_distinct_clips(caches):
    task = make_task(config("data.pool=4"))
    cache = task.open(caches[0])
    records = [cache[i] for i in range(len(cache))]
    loader = task.loader(cache, batch_size=8, num_workers=0, train=True, epoch=0)
    pairs = sum(len(training_pairs(r["windows"], r["sentence_spans"])) for r in records)
    batches = list(loader)
    assert loader.samples == pairs and len(batches) == loader.steps
    keys = [pair_keys(batch, records) for batch in batches]
    assert sum(map(len, keys)) == pairs
    repeated = [i for i, batch in enumerate(keys) if len({k[:3] for k in batch}) < len(batch)]
    assert all(i >= len(batches) - 3 for i in repeated)  # only the last batches, when few clips are left
    again = next(iter(task.loader(cache, batch_size=8, num_workers=0, train=True, epoch=0)))
    np.testing.assert_array_equal(again["visual"].numpy(), batches[0]["visual"].numpy())


def test_a_training_sample_is_the_window_with_its_context_and_offsets(caches):
    task = make_task(config())
    cache = task.open(caches[0])
    batch = next(iter(task.loader(cache, batch_size=1, num_workers=0, train=True)))
    record = open_cache(caches[0])[int(batch["index"][0])]
    windows, features = np.asarray(record["windows"]), np.asarray(record["window_features"])
    visual = batch["visual"].numpy()[0]
    row = int(np.flatnonzero((features == visual[64:128]).all(axis=1))[0])
    left, right = context_rows(windows)
    np.testing.assert_array_equal(visual[:64], features[left[row]])
    np.testing.assert_array_equal(visual[128:], features[right[row]])
    sentence = int(np.flatnonzero((np.asarray(record["sentence_vectors"]) == batch["sentence"].numpy()[0]).all(1))[0])
    span = np.asarray(record["sentence_spans"])[sentence]
    assert batch["offsets"].numpy()[0].tolist() == (span - windows[row]).tolist()


def test_evaluation_reads_the_test_windows_of_each_movie(caches):
    task = make_task(config())
    cache = task.open(caches[0])
    batches = list(task.loader(cache, batch_size=3, num_workers=0, train=False))
    assert sum(int(b["index"].shape[0]) for b in batches) == len(cache)
    batch = batches[0]
    w = int(batch["num_windows"][0])
    lengths = np.diff(batch["windows"].numpy()[0, :w], axis=1).ravel()
    assert set(lengths.tolist()) == {128.0, 256.0}
    every = make_task(config("eval.window_lengths=[]")).loader(cache, batch_size=1, num_workers=0, train=False)
    assert int(next(iter(every))["num_windows"][0]) == len(open_cache(caches[0])[0]["windows"])


def test_dimensions_and_kind_are_checked(caches, tmp_path):
    with pytest.raises(CacheError, match=r"set -o model.visual_dim=192"):
        make_task(config("model.visual_dim=100")).open(caches[0])
    with pytest.raises(CacheError, match=r"set -o model.sentence_dim=48"):
        make_task(config("model.sentence_dim=10")).open(caches[0])
    from videotk.pipelines.anet_captions import convert_anet_captions
    from videotk.pipelines.synth_captions import synth_anet_captions

    raw = synth_anet_captions(tmp_path / "raw", videos=8, feature_dim=4, seed=1)
    convert_anet_captions(raw["features"], [raw["train"], raw["val_1"]], tmp_path / "anet", workers=1)
    with pytest.raises(CacheError, match=r"an? 'anet_captions' cache, but tall reads 'tacos' caches: .*vtk convert tacos"):
        make_task(config()).open(tmp_path / "anet")


def test_predictions_are_the_best_moments_per_sentence(caches, tmp_path):
    train(config(), caches[0], save_dir=tmp_path / "run")
    out = tmp_path / "moments.json"
    count = predict(config(), caches[1], tmp_path / "run" / "epoch_000", out)
    document = json.loads(out.read_text())
    assert document["units"] == "frames" and count == len(document["results"]) == len(open_cache(caches[1]))
    record = open_cache(caches[1])[0]
    sentences = document["results"][record["id"]]
    assert [s["sentence"] for s in sentences] == list(range(len(record["sentences"])))
    assert [s["text"] for s in sentences] == list(record["sentences"])
    for entry in sentences:
        scores = [m["score"] for m in entry["moments"]]
        assert 1 <= len(scores) <= 5 and scores == sorted(scores, reverse=True)
        assert all(len(m["segment"]) == 2 for m in entry["moments"])
