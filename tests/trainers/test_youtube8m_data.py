"""YouTube8MFrames and its loader on real Parquet and HDF5 caches of synthetic tfrecords."""

import os
from collections import Counter
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from videotk.formats import open_cache
from videotk.pipelines.youtube8m import convert_youtube8m
from videotk.trainers.config import load_config
from videotk.trainers.loader import SampleFailure, make_loader
from videotk.trainers.sharding import ReaderSlot, reading_plan
from videotk.trainers.tasks import CacheKindError, make_task
from videotk.trainers.tasks.youtube8m import (
    YouTube8MFrames,
    dequantize,
    multi_hot,
    sampled_frames,
)

NUM_CLASSES = 12
MAX_FRAMES = 20
LAYOUTS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 2)]


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict:
    """``many``: 8 Parquet shards of 4 videos (2-40 frames); ``few``: the first 2 of those shards;
    ``hdf5``: the 8 shards as HDF5."""
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    root = tmp_path_factory.mktemp("yt8m-data")
    synth_youtube8m(root / "src", num_files=8, videos_per_file=4, num_classes=NUM_CLASSES, min_frames=2,
                    max_frames=40, seed=12)
    convert_youtube8m(root / "src", root / "many", workers=1)
    convert_youtube8m(str(root / "src" / "train000[01].tfrecord"), root / "few", workers=1)
    convert_youtube8m(root / "src", root / "hdf5", fmt="hdf5", workers=1)
    return {name: root / name for name in ("many", "few", "hdf5")}


def frames_dataset(path, **kwargs) -> YouTube8MFrames:
    return YouTube8MFrames(open_cache(path), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES, **kwargs)


def indices_read_by(dataset: YouTube8MFrames, slot: ReaderSlot, monkeypatch) -> list[int]:
    """The record indices ``dataset`` yields in the DataLoader worker ``slot``."""
    monkeypatch.setattr(paddle.io, "get_worker_info", lambda: SimpleNamespace(id=slot.worker, num_workers=slot.num_workers))
    dataset.rank, dataset.world_size = slot.rank, slot.world_size
    return [int(sample["index"]) for sample in dataset]


def all_slots(world_size: int, num_workers: int) -> list[ReaderSlot]:
    return [ReaderSlot(r, world_size, w, num_workers) for r in range(world_size) for w in range(num_workers)]


def codes(record: dict, key: str, width: int) -> np.ndarray:
    return np.frombuffer(record[key], np.uint8).reshape(record["num_frames"], width)


@pytest.mark.parametrize("cache", ["many", "few"])
@pytest.mark.parametrize("world_size, num_workers", LAYOUTS)
@pytest.mark.parametrize("train", [False, True])
def test_every_record_once_over_ranks_and_workers(caches, monkeypatch, cache, world_size, num_workers, train):
    dataset = frames_dataset(caches[cache], train=train, even=False, shuffle_buffer=4)
    read = Counter(i for slot in all_slots(world_size, num_workers) for i in indices_read_by(dataset, slot, monkeypatch))
    assert sorted(read) == list(range(len(dataset.cache))) and set(read.values()) == {1}


@pytest.mark.parametrize("world_size, num_workers", [(2, 1), (3, 2)])
def test_training_on_several_ranks_gives_equal_shares(caches, monkeypatch, world_size, num_workers):
    dataset = frames_dataset(caches["many"], train=True, shuffle_buffer=4)
    shares = [indices_read_by(dataset, slot, monkeypatch) for slot in all_slots(world_size, num_workers)]
    total, readers = len(dataset.cache), world_size * num_workers
    assert {len(share) for share in shares} == {total // readers}
    assert len(set().union(*shares)) == total - total % readers


def test_order_is_deterministic_per_seed_and_epoch(caches):
    def order(seed=0, epoch=0):
        dataset = frames_dataset(caches["many"], train=True, shuffle_buffer=8, seed=seed, num_samples=5)
        dataset.set_epoch(epoch)
        samples = [sample for sample in dataset]  # list() would ask an IterableDataset for len()
        return [int(s["index"]) for s in samples], np.stack([s["rgb"] for s in samples])

    indices, rgb = order()
    again, rgb_again = order()
    assert indices == again and np.array_equal(rgb, rgb_again)
    assert sorted(indices) == list(range(32)) and indices != list(range(32))
    assert order(epoch=1)[0] != indices
    assert order(seed=1)[0] != indices
    evaluation = [int(s["index"]) for s in frames_dataset(caches["many"])]
    assert evaluation == list(range(32))


def test_dequantize_values():
    q = np.array([0, 1, 128, 255], np.uint8)
    x = dequantize(q)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, q * 4.0 / 255.0 + 4.0 / 512.0 - 2.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x[[0, -1]], [-2 + 1 / 128, 2 + 1 / 128], atol=1e-6)


def test_samples_are_dequantized_truncated_and_padded(caches):
    cache = open_cache(caches["many"])
    dataset = frames_dataset(caches["many"])
    lengths = cache.column("num_frames")
    short, long_ = lengths.index(min(lengths)), lengths.index(max(lengths))
    assert lengths[short] < MAX_FRAMES < lengths[long_]
    samples = {int(s["index"]): s for s in frames_dataset(caches["many"], codes=False)}
    stored = {int(s["index"]): s for s in dataset}
    for index in (short, long_):
        record, sample = cache[index], samples[index]
        kept = min(record["num_frames"], MAX_FRAMES)
        assert sample["rgb"].shape == (MAX_FRAMES, 1024) and sample["audio"].shape == (MAX_FRAMES, 128)
        assert sample["rgb"].dtype == sample["audio"].dtype == sample["mask"].dtype == np.float32
        np.testing.assert_array_equal(sample["rgb"][:kept], dequantize(codes(record, "rgb", 1024)[:kept]))
        np.testing.assert_array_equal(sample["audio"][:kept], dequantize(codes(record, "audio", 128)[:kept]))
        assert not sample["rgb"][kept:].any() and not sample["audio"][kept:].any()
        np.testing.assert_array_equal(sample["mask"], np.arange(MAX_FRAMES) < kept)
        as_stored = stored[index]
        assert as_stored["rgb"].dtype == as_stored["audio"].dtype == np.uint8
        np.testing.assert_array_equal(as_stored["rgb"][:kept], codes(record, "rgb", 1024)[:kept])
        assert not as_stored["rgb"][kept:].any() and not as_stored["audio"][kept:].any()
        np.testing.assert_array_equal(as_stored["mask"], sample["mask"])


@pytest.mark.parametrize("settings", [{}, {"dequantize": False}, {"num_samples": 5}, {"max_frames": 60}])
def test_task_inputs_of_codes_equal_the_float_path(caches, settings):
    """A batch of uint8 codes becomes, in the task's inputs, exactly the features that the dataset
    makes with numpy when asked for floats."""
    overrides = [f"data.{key}={value}" for key, value in settings.items()]
    config = load_config("attention_cluster", "attention_cluster_tiny", [*overrides, f"model.num_classes={NUM_CLASSES}"])
    task = make_task(config)
    cache = open_cache(caches["many"])
    stored = task.dataset(cache, train=False)
    floats = YouTube8MFrames(cache, num_classes=NUM_CLASSES, max_frames=stored.max_frames,
                             num_samples=stored.num_samples, dequantize=stored.dequantize, codes=False)
    [batch] = list(make_loader(stored, batch_size=len(cache), num_workers=0))
    [expected] = list(make_loader(floats, batch_size=len(cache), num_workers=0))
    assert batch["rgb"].dtype == paddle.uint8 and expected["rgb"].dtype == paddle.float32
    rgb, audio, mask = task.inputs(batch)
    assert rgb.dtype == audio.dtype == paddle.float32
    np.testing.assert_array_equal(rgb.numpy(), expected["rgb"].numpy())
    np.testing.assert_array_equal(audio.numpy(), expected["audio"].numpy())
    np.testing.assert_array_equal(mask.numpy(), expected["mask"].numpy())
    assert [t.numpy().tolist() for t in task.inputs(expected)[:2]] == [expected["rgb"].numpy().tolist(),
                                                                     expected["audio"].numpy().tolist()]


def test_raw_codes_without_dequantizing(caches):
    record = open_cache(caches["many"])[0]
    sample = next(iter(frames_dataset(caches["many"], dequantize=False, codes=False)))
    kept = min(record["num_frames"], MAX_FRAMES)
    np.testing.assert_array_equal(sample["rgb"][:kept], codes(record, "rgb", 1024)[:kept].astype(np.float32))
    assert sample["rgb"].max() <= 255 and sample["rgb"].dtype == np.float32


def test_centre_sampling_by_hand():
    np.testing.assert_array_equal(sampled_frames(10, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(sampled_frames(3, 5), [0, 0, 1, 2, 2])


def test_random_sampling_takes_one_frame_per_stride():
    rng = np.random.default_rng(0)
    ten = np.stack([sampled_frames(10, 5, rng) for _ in range(200)])
    for stride, column in enumerate(ten.T):
        assert set(column) == {2 * stride, 2 * stride + 1}
    three = np.stack([sampled_frames(3, 5, rng) for _ in range(200)])  # strides of 0.6 frames
    assert [set(column) for column in three.T] == [{0}, {0, 1}, {1}, {1, 2}, {2}]


def hand_made_record(num_frames: int) -> dict:
    """A record whose frame ``t`` holds the code ``t`` everywhere."""
    frames = np.arange(num_frames, dtype=np.uint8)[:, None]
    return {"id": "hand", "labels": np.array([2], np.int32), "num_frames": num_frames,
            "rgb": np.repeat(frames, 1024, axis=1).tobytes(), "audio": np.repeat(frames, 128, axis=1).tobytes()}


@pytest.mark.parametrize("num_frames, expected", [(10, [1, 3, 5, 7, 9]), (3, [0, 0, 1, 2, 2]), (0, [])])
def test_sampled_sample_of_a_hand_made_video(caches, num_frames, expected):
    sample = frames_dataset(caches["few"], num_samples=5).sample(7, hand_made_record(num_frames))
    assert sample["rgb"].shape == (5, 1024) and sample["audio"].shape == (5, 128)
    codes_seen = np.array(expected, np.uint8)
    np.testing.assert_array_equal(sample["rgb"][: len(expected), 0], codes_seen)
    np.testing.assert_array_equal(sample["audio"][: len(expected), -1], codes_seen)
    assert not sample["rgb"][len(expected):].any()
    np.testing.assert_array_equal(sample["mask"], np.ones(5) if num_frames else np.zeros(5))
    assert int(sample["index"]) == 7 and sample["labels"].tolist() == [0, 0, 1] + [0] * (NUM_CLASSES - 3)


def test_sampled_samples(caches):
    cache = open_cache(caches["many"])
    samples = [sample for sample in frames_dataset(caches["many"], num_samples=5)]
    for sample in samples:
        record = cache[int(sample["index"])]
        rows = sampled_frames(min(record["num_frames"], MAX_FRAMES), 5)
        np.testing.assert_array_equal(sample["rgb"], codes(record, "rgb", 1024)[rows])
        np.testing.assert_array_equal(sample["mask"], np.ones(5, np.float32))
    assert any(cache[int(s["index"])]["num_frames"] < 5 for s in samples), "no short video to repeat frames of"


def test_labels_are_multi_hot(caches):
    cache = open_cache(caches["many"])
    for sample in frames_dataset(caches["many"]):
        expected = np.zeros(NUM_CLASSES, np.float32)
        expected[cache[int(sample["index"])]["labels"]] = 1
        np.testing.assert_array_equal(sample["labels"], expected)


def test_label_out_of_range_names_the_video(caches):
    record = open_cache(caches["many"])[0]
    too_few = int(record["labels"].max())
    failure = next(iter(YouTube8MFrames(open_cache(caches["many"]), num_classes=too_few)))
    assert isinstance(failure, SampleFailure)
    assert f"record 0 (id '{record['id']}')" in failure.message and "model.num_classes" in failure.message
    with pytest.raises(ValueError, match="'v1'"):
        multi_hot(np.array([-1], np.int32), 5, "v1")


def test_hdf5_gives_the_same_samples(caches):
    for parquet, hdf5 in zip(frames_dataset(caches["many"], num_samples=4), frames_dataset(caches["hdf5"], num_samples=4)):
        assert parquet.keys() == hdf5.keys()
        for key in parquet:
            np.testing.assert_array_equal(parquet[key], hdf5[key])


def test_video_level_cache_is_refused(yt8m_video_src, tmp_path):
    convert_youtube8m(yt8m_video_src, tmp_path / "video", workers=1)
    task = make_task(load_config("attention_lstm", "attention_lstm_tiny"))
    with pytest.raises(CacheKindError, match=r"'youtube8m-video' cache.*'youtube8m-frame'.*--level frame") as info:
        task.open(tmp_path / "video")
    assert str(tmp_path / "video") in str(info.value)


def test_loader_batches_with_two_worker_processes(caches):
    loader = make_loader(frames_dataset(caches["few"], train=True, shuffle_buffer=4), batch_size=3, num_workers=2)
    batches = [batch for batch in loader]
    assert len(batches) == loader.steps == 4  # two workers of 4 videos each: 3 + 1, 3 + 1
    first = batches[0]
    assert first["rgb"].shape == [3, MAX_FRAMES, 1024] and first["audio"].shape == [3, MAX_FRAMES, 128]
    assert first["mask"].shape == [3, MAX_FRAMES] and first["labels"].shape == [3, NUM_CLASSES]
    assert first["index"].dtype == paddle.int64 and first["rgb"].dtype == first["audio"].dtype == paddle.uint8
    indices = [i for batch in batches for i in batch["index"].numpy().tolist()]
    assert sorted(indices) == list(range(8))
    samples = {int(s["index"]): s for s in frames_dataset(caches["few"], train=True, shuffle_buffer=4)}
    for row, index in enumerate(first["index"].numpy()):
        for key in ("rgb", "audio", "mask", "labels"):
            np.testing.assert_array_equal(first[key].numpy()[row], samples[index][key])
    rows = [entry["rows"] for entry in open_cache(caches["few"]).shards]
    starts = np.cumsum([0, *rows])
    plans = [reading_plan(rows, ReaderSlot(0, 1, worker, 2), shuffle=True) for worker in range(2)]
    shares = [{starts[s.shard] + row for s in plan for row in range(s.start, s.stop)} for plan in plans]
    assert all(any(set(batch["index"].numpy().tolist()) <= share for share in shares) for batch in batches)


class _WithProcess(YouTube8MFrames):
    """Samples that also tell which process made them."""

    def sample(self, index, record, rng=None):
        return {**super().sample(index, record, rng), "pid": np.array(os.getpid(), np.int64)}


def test_dataloader_workers_are_separate_processes(caches):
    dataset = _WithProcess(open_cache(caches["many"]), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES)
    loader = paddle.io.DataLoader(dataset, batch_size=4, num_workers=2)
    pids, indices = set(), []
    for batch in loader:
        pids |= set(batch["pid"].numpy().tolist())
        indices += batch["index"].numpy().tolist()
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(indices) == list(range(32))


@pytest.mark.parametrize("cache", ["many", "hdf5"])
def test_two_worker_processes_give_the_samples_of_one_process(caches, cache):
    def by_index(num_workers: int) -> dict[int, dict]:
        dataset = _WithProcess(open_cache(caches[cache]), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES)
        samples = {}
        for batch in make_loader(dataset, batch_size=5, num_workers=num_workers):
            arrays = {key: value.numpy() for key, value in batch.items()}
            for row, index in enumerate(arrays["index"].tolist()):
                assert index not in samples
                samples[index] = {key: value[row] for key, value in arrays.items()}
        return samples

    alone, forked = by_index(0), by_index(2)
    assert sorted(alone) == sorted(forked) == list(range(32))
    assert {int(s["pid"]) for s in alone.values()} == {os.getpid()}
    assert len({int(s["pid"]) for s in forked.values()} - {os.getpid()}) == 2
    for index, sample in alone.items():
        for key in ("rgb", "audio", "mask", "labels"):
            np.testing.assert_array_equal(forked[index][key], sample[key])
