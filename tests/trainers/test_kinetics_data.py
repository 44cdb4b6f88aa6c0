"""Kinetics sampling by hand, frame decoding, and KineticsClips on real JPEG / raw caches."""

import io
from collections import Counter
from types import SimpleNamespace

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from videotk.evaluators.kinetics import KineticsEvaluator
from videotk.formats import open_cache, youtube8m_columns
from videotk.formats.manifest import write_manifest
from videotk.formats.schema import columns_to_json
from videotk.pipelines.kinetics import decode_kinetics
from videotk.trainers import transforms
from videotk.trainers.clips import (
    ClipSampler,
    decode_frames,
    dense_indices,
    segment_indices,
    spread_start,
    views_from_record,
)
from videotk.trainers.config import load_config
from videotk.trainers.loader import SampleFailure, make_loader
from videotk.trainers.sharding import ReaderSlot
from videotk.trainers.tasks import CacheKindError, make_task
from videotk.trainers.tasks.kinetics import KineticsClips

SHORT_SIDE = 128  # the caches' short side; frames are 128 x 170, 25 per video
CROP = 112
LAYOUTS = [(1, 1), (1, 2), (2, 2), (3, 2)]
SHAPES = {
    "tsn": {"mode": "tsn", "seg_num": 3},
    "stnet": {"mode": "tsn", "seg_num": 7, "seglen": 5},  # 35 frames wanted from 25
    "dense": {"mode": "dense", "num_frames_out": 4, "sample_rate": 4},
    "nonlocal": {"mode": "dense", "num_frames_out": 8, "sample_rate": 8},  # a 57-frame window: loops
}
EXPECTED_SHAPES = {"tsn": (3, 3, CROP, CROP), "stnet": (35, 3, CROP, CROP), "dense": (3, 4, CROP, CROP),
                   "nonlocal": (3, 8, CROP, CROP)}


@pytest.fixture(scope="module")
def caches(kinetics_src, tmp_path_factory) -> dict:
    """The 8 synthetic clips at short side 128, 2 per shard: JPEG frames in Parquet, raw frames in HDF5."""
    root = tmp_path_factory.mktemp("kinetics-data")
    decode_kinetics(kinetics_src, root / "jpeg", workers=1, short_side=SHORT_SIDE, videos_per_shard=2)
    decode_kinetics(kinetics_src, root / "raw", workers=1, short_side=SHORT_SIDE, videos_per_shard=2, codec="raw",
                    fmt="hdf5")
    return {"jpeg": root / "jpeg", "raw": root / "raw"}


DATASET_KEYS = ("train", "shuffle_buffer", "seed", "rank", "world_size", "even", "normalized")


def clips(path, **kwargs) -> KineticsClips:
    """A dataset of the cache at ``path``: ``kwargs`` are KineticsClips and ClipSampler arguments;
    its samples are the model's float32 input (``normalized``) unless ``normalized=False``."""
    kwargs.setdefault("normalized", True)
    dataset = {key: kwargs.pop(key) for key in DATASET_KEYS if key in kwargs}
    sampler = ClipSampler(**{"short_side": SHORT_SIDE, "crop_size": CROP, **kwargs})
    return KineticsClips(open_cache(path), sampler, **dataset)


def samples_of(dataset) -> list[dict]:
    return [sample for sample in dataset]  # list() would ask an IterableDataset for len()


def read_by(dataset: KineticsClips, slot: ReaderSlot, monkeypatch) -> list[tuple[int, int]]:
    """``(index, view)`` of the samples ``dataset`` yields in the DataLoader worker ``slot``."""
    worker = SimpleNamespace(id=slot.worker, num_workers=slot.num_workers)
    monkeypatch.setattr(paddle.io, "get_worker_info", lambda: worker)
    dataset.rank, dataset.world_size = slot.rank, slot.world_size
    return [(int(s["index"]), int(s["view"])) for s in dataset]


def all_slots(world_size: int, num_workers: int) -> list[ReaderSlot]:
    return [ReaderSlot(r, world_size, w, num_workers) for r in range(world_size) for w in range(num_workers)]


def hand_made_record(num_frames: int, codec: str) -> dict:
    """A 16 x 24 video whose frame ``t`` is grey level ``10 * t``."""
    frames = np.repeat(np.arange(num_frames, dtype=np.uint8) * 10, 16 * 24 * 3).reshape(num_frames, 16, 24, 3)
    if codec == "raw":
        data = frames.tobytes()
    else:
        data = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for frame in frames]
    return {"id": "hand", "num_frames": num_frames, "height": 16, "width": 24, "frames": data}


# --- sampling -------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_frames, seg_num, seglen, expected", [
    (10, 3, 1, [1, 4, 7]),  # segments of 3 frames, centre offset 1
    (25, 3, 2, [3, 4, 11, 12, 19, 20]),  # segments of 8, offset (8 - 2) // 2
    (10, 3, 5, [0, 1, 2, 3, 4, 3, 4, 5, 6, 7, 6, 7, 8, 9, 0]),  # segments of 3 < seglen: segment starts, wrap
    (2, 3, 2, [0, 1, 1, 0, 0, 1]),  # fewer frames than segments: segment i starts at frame i
    (1, 2, 3, [0, 0, 0, 0, 0, 0]),
])
def test_segment_indices_in_testing_by_hand(num_frames, seg_num, seglen, expected):
    assert segment_indices(num_frames, seg_num, seglen).tolist() == expected


def test_segment_test_clips_are_spread_inside_the_segments():
    # segments of 8 frames, slack 7: clip k of 10 starts (2k + 1) * 7 // 20 frames in
    starts = [segment_indices(25, 3, 1, clip_index=k, num_clips=10)[0] for k in range(10)]
    assert starts == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6]
    assert segment_indices(25, 3, 1, clip_index=9, num_clips=10).tolist() == [6, 14, 22]


def test_segment_indices_in_training_stay_inside_their_segment():
    rng = np.random.default_rng(0)
    draws = np.stack([segment_indices(25, 3, 2, train=True, rng=rng) for _ in range(300)])
    for segment in range(3):
        first = draws[:, 2 * segment]
        assert set(first.tolist()) == set(range(8 * segment, 8 * segment + 7))
        np.testing.assert_array_equal(draws[:, 2 * segment + 1], first + 1)
    assert segment_indices(10, 3, 5, train=True, rng=rng).tolist() == segment_indices(10, 3, 5).tolist()
    again = np.random.default_rng(0)
    assert [segment_indices(25, 3, 2, train=True, rng=again).tolist() for _ in range(5)] == draws[:5].tolist()


@pytest.mark.parametrize("num_frames, out, rate, expected", [
    (100, 8, 8, [21 + 8 * i for i in range(8)]),  # window 57, slack 43, centred at 21
    (57, 8, 8, [8 * i for i in range(8)]),  # the window fills the video
    (20, 4, 8, [0, 8, 16, 4]),  # shorter than the window: from frame 0, looping
    (5, 3, 1, [1, 2, 3]),
])
def test_dense_indices_in_testing_by_hand(num_frames, out, rate, expected):
    assert dense_indices(num_frames, out, rate).tolist() == expected


def test_dense_test_clips_are_spread_over_the_video():
    # 100 frames, window 57, slack 43: clip k of 10 starts at (2k + 1) * 43 // 20
    starts = [int(dense_indices(100, 8, 8, clip_index=k)[0]) for k in range(10)]
    assert starts == [2, 6, 10, 15, 19, 23, 27, 32, 36, 40]
    assert [int(dense_indices(20, 4, 8, clip_index=k)[0]) for k in range(10)] == [0] * 10
    assert spread_start(10, None, 3) == 5 and spread_start(10, 0, 1) == 5
    with pytest.raises(ValueError, match="clip_index 10 is outside 0..9"):
        dense_indices(100, clip_index=10)


def test_dense_indices_in_training_draw_every_window_start():
    rng = np.random.default_rng(1)
    draws = np.stack([dense_indices(30, 4, 8, train=True, rng=rng) for _ in range(300)])
    assert set(draws[:, 0].tolist()) == set(range(6))  # window 25 in 30 frames
    np.testing.assert_array_equal(np.diff(draws, axis=1), 8)
    assert dense_indices(20, 4, 8, train=True, rng=rng).tolist() == [0, 8, 16, 4]


def test_sampling_arguments_are_checked():
    with pytest.raises(ValueError, match="pass rng"):
        segment_indices(10, 3, train=True)
    with pytest.raises(ValueError, match="num_frames must be at least 1, got 0"):
        dense_indices(0)
    with pytest.raises(ValueError, match="seglen must be at least 1"):
        segment_indices(10, 3, 0)


# --- decoding ------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["jpeg", "raw"])
def test_decode_frames_of_a_hand_made_video(codec):
    frames = decode_frames(hand_made_record(6, codec), [5, 0, 2, 2])
    assert frames.shape == (4, 16, 24, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(frames.reshape(4, -1).mean(axis=1), [50, 0, 20, 20], atol=1)
    in_any_order = decode_frames(hand_made_record(6, codec), [4, 1, 3])
    np.testing.assert_allclose(in_any_order.reshape(3, -1).mean(axis=1), [40, 10, 30], atol=1)
    assert decode_frames(hand_made_record(3, codec), []).shape == (0, 16, 24, 3)


def test_only_distinct_wanted_jpegs_are_decoded(monkeypatch):
    decoded = []
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: decoded.append(data[0]) or imdecode(data, flags))
    decode_frames(hand_made_record(8, "jpeg"), [6, 1, 6, 6, 3])
    assert len(decoded) == 3


def test_jpeg_frames_decode_as_pillow_does(caches):
    record = open_cache(caches["jpeg"])[3]
    frames = decode_frames(record, [0, 24])
    for frame, jpeg in zip(frames, (record["frames"][0], record["frames"][24])):
        np.testing.assert_array_equal(frame, np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))


def test_raw_frames_are_slices_of_the_buffer(caches):
    record = open_cache(caches["raw"])[3]
    video = np.frombuffer(record["frames"], np.uint8).reshape(25, SHORT_SIDE, 170, 3)
    np.testing.assert_array_equal(decode_frames(record, [4, 9]), video[[4, 9]])


def test_bad_records_name_the_video():
    with pytest.raises(IndexError, match=r"video 'hand': frame indices outside 0..2"):
        decode_frames(hand_made_record(3, "jpeg"), [3])
    short = {**hand_made_record(3, "raw"), "num_frames": 4}
    with pytest.raises(ValueError, match=r"video 'hand': raw frames hold 3456 bytes, not 4 x 16 x 24 x 3"):
        decode_frames(short, [0])
    with pytest.raises(ValueError, match="video 'hand': 3 JPEG frames, but num_frames is 4"):
        decode_frames({**hand_made_record(3, "jpeg"), "num_frames": 4}, [0])
    broken = hand_made_record(3, "jpeg")
    broken["frames"][1] = b"not a jpeg"
    with pytest.raises(ValueError, match="video 'hand': frame 1 is not a JPEG"):
        decode_frames(broken, [1])
    with pytest.raises(ValueError, match="frame 0 is 24x16, expected a 48x16 JPEG"):
        decode_frames({**hand_made_record(3, "jpeg"), "width": 48}, [0])


# --- the dataset ---------------------------------------------------------------------------------

def test_other_cache_kinds_are_refused(tmp_path):
    columns = columns_to_json(youtube8m_columns("frame"))
    write_manifest(tmp_path, {"kind": "youtube8m-frame", "format": "parquet", "columns": columns, "shards": []})
    task = make_task(load_config("tsn", "tsn_tiny"))
    with pytest.raises(CacheKindError, match=r"'youtube8m-frame' cache.*'kinetics' caches.*vtk decode kinetics") as info:
        task.open(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("options, message", [
    ({"mode": "sparse"}, "unknown mode 'sparse'"),
    ({"test_views": "5crop"}, "unknown test_views '5crop'"),
    ({"short_side": 100, "crop_size": 112}, "short_side 100 is smaller than crop_size 112"),
    ({"scale_jitter": (100, 140), "crop_size": 112}, r"scale_jitter \(100, 140\)"),
    ({"seg_num": 0}, "seg_num must be at least 1"),
])
def test_sampler_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        ClipSampler(**options)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("train", [True, False])
def test_samples_shapes_labels_and_values(caches, shape, train):
    dataset = clips(caches["jpeg"], train=train, **SHAPES[shape])
    samples = samples_of(dataset)
    assert sorted(int(s["index"]) for s in samples) == list(range(8))
    for sample in samples:
        assert sample.keys() == {"frames", "label", "index", "view"}
        assert sample["frames"].shape == EXPECTED_SHAPES[shape] and sample["frames"].dtype == np.float32
        assert -2.2 < sample["frames"].min() and sample["frames"].max() < 2.7
        assert sample["label"].dtype == sample["index"].dtype == sample["view"].dtype == np.int64
        assert int(sample["label"]) == dataset.cache[int(sample["index"])]["label"] and int(sample["view"]) == 0


@pytest.mark.parametrize("train_options", [{"scale_jitter": (120, 150)}, {"multi_scale": True}])
def test_training_augmentations(caches, train_options):
    samples = samples_of(clips(caches["jpeg"], mode="dense", train=True, **train_options))
    assert {s["frames"].shape for s in samples} == {(3, 8, CROP, CROP)}


def test_test_time_clip_by_hand(caches):
    """Evaluation with one view: centred segments, centre crop, normalised, as the transforms do it."""
    dataset = clips(caches["jpeg"], mode="tsn", seg_num=3, seglen=2)
    sample = next(iter(dataset))
    record = dataset.cache[0]
    frames = decode_frames(record, segment_indices(25, 3, 2))  # frames 3, 4, 11, 12, 19, 20
    np.testing.assert_array_equal(sample["frames"], transforms.normalize(transforms.center_crop(frames, CROP)))


def test_thirty_views_by_hand(caches):
    """Non-local testing: 10 clips x 3 crops of the short side, view = 3 * clip + crop."""
    dataset = clips(caches["jpeg"], mode="dense", num_frames_out=4, sample_rate=2, crop_size=SHORT_SIDE,
                    test_views="30view")
    views = [s for s in samples_of(dataset) if int(s["index"]) == 5]
    assert [int(s["view"]) for s in views] == list(range(30))
    record = dataset.cache[5]
    for clip in (0, 4, 9):
        frames = decode_frames(record, dense_indices(25, 4, 2, clip_index=clip))
        crops = transforms.three_crop(frames, SHORT_SIDE)
        for crop in range(3):
            expected = transforms.normalize(crops[crop], "CTHW")
            np.testing.assert_array_equal(views[3 * clip + crop]["frames"], expected)


@pytest.mark.parametrize("test_views, count", [(1, 1), ("3crop", 3), ("10clip", 10), ("30view", 30)])
@pytest.mark.parametrize("mode", ["tsn", "dense"])
def test_views_per_video_match_views_from_record(caches, test_views, count, mode):
    dataset = clips(caches["jpeg"], mode=mode, seg_num=3, num_frames_out=4, test_views=test_views)
    assert dataset.sampler.num_views == count
    samples = samples_of(dataset)
    assert [(int(s["index"]), int(s["view"])) for s in samples] == [(i, v) for i in range(8) for v in range(count)]
    record = dataset.cache[2]
    views = views_from_record({key: record[key] for key in ("num_frames", "height", "width", "frames")},
                              mode=mode, seg_num=3, num_frames_out=4, short_side=SHORT_SIDE, crop_size=CROP,
                              test_views=test_views)
    assert views.shape == (count, *samples[0]["frames"].shape)
    np.testing.assert_array_equal(views, np.stack([s["frames"] for s in samples[2 * count : 3 * count]]))


def test_views_are_aggregated_per_video_by_the_evaluator(caches):
    """Every video's middle crop votes for a wrong class: clips are 2/3 right, videos all right."""
    evaluator = KineticsEvaluator(4)
    for sample in clips(caches["jpeg"], mode="tsn", seg_num=2, test_views="3crop"):
        label = int(sample["label"])
        scores = np.full(4, 0.1)
        scores[(label + 1) % 4 if int(sample["view"]) == 1 else label] = 1.0
        evaluator.update(scores[None], sample["label"][None], sample["index"][None])
    summary = evaluator.summary()
    assert summary["num_videos"] == 8 and summary["num_clips"] == 24
    assert summary["clip_top1"] == pytest.approx(2 / 3) and summary["video_top1"] == 1.0


@pytest.mark.parametrize("world_size, num_workers", LAYOUTS)
@pytest.mark.parametrize("train", [False, True])
def test_every_view_of_every_record_once_over_ranks_and_workers(caches, monkeypatch, world_size, num_workers, train):
    dataset = clips(caches["jpeg"], mode="dense", num_frames_out=2, train=train, even=False, shuffle_buffer=3,
                    test_views="3crop")
    read = Counter(item for slot in all_slots(world_size, num_workers) for item in read_by(dataset, slot, monkeypatch))
    views = [0] if train else [0, 1, 2]
    assert sorted(read) == [(i, v) for i in range(8) for v in views] and set(read.values()) == {1}


def test_training_on_several_ranks_gives_equal_shares(caches, monkeypatch):
    dataset = clips(caches["jpeg"], mode="dense", num_frames_out=2, train=True, shuffle_buffer=3)
    shares = [read_by(dataset, slot, monkeypatch) for slot in all_slots(3, 1)]
    assert {len(share) for share in shares} == {2}
    assert len({index for share in shares for index, _ in share}) == 6


def test_training_order_and_clips_are_deterministic_per_seed_and_epoch(caches):
    def run(seed=0, epoch=0):
        dataset = clips(caches["jpeg"], mode="tsn", seg_num=3, multi_scale=True, train=True, shuffle_buffer=4,
                        seed=seed)
        dataset.set_epoch(epoch)
        samples = samples_of(dataset)
        return [int(s["index"]) for s in samples], np.stack([s["frames"] for s in samples])

    order, frames = run()
    again, frames_again = run()
    assert order == again and np.array_equal(frames, frames_again)
    assert sorted(order) == list(range(8))
    assert run(epoch=1)[0] != order or not np.array_equal(run(epoch=1)[1], frames)
    assert not np.array_equal(run(seed=1)[1], frames)


def test_jpeg_parquet_and_raw_hdf5_give_the_same_samples_up_to_jpeg_loss(caches):
    options = {"mode": "dense", "num_frames_out": 4, "train": True, "scale_jitter": (120, 150), "shuffle_buffer": 3}
    for jpeg, raw in zip(clips(caches["jpeg"], **options), clips(caches["raw"], **options), strict=True):
        assert int(jpeg["index"]) == int(raw["index"]) and int(jpeg["label"]) == int(raw["label"])
        assert np.abs(jpeg["frames"] - raw["frames"]).mean() < 0.05


def test_frames_of_the_cache_size_are_not_resized(caches, monkeypatch):
    def refuse(*args):
        raise AssertionError("resized frames that already had the short side")

    monkeypatch.setattr(transforms, "resize", refuse)
    assert len(samples_of(clips(caches["jpeg"], mode="tsn", seg_num=2))) == 8
    failure = next(iter(clips(caches["jpeg"], short_side=144)))
    assert isinstance(failure, SampleFailure) and "AssertionError: resized" in failure.message


def test_loader_batches_with_two_worker_processes(caches):
    loader = make_loader(clips(caches["jpeg"], mode="tsn", seg_num=2, test_views="3crop", normalized=False),
                         batch_size=3, num_workers=2)
    batches = [batch for batch in loader]
    assert len(batches) == loader.steps == 8  # two workers of 4 videos x 3 views: 12 samples, 4 batches each
    first = batches[0]
    assert first["frames"].shape == [3, 2, CROP, CROP, 3] and first["frames"].dtype == paddle.uint8
    assert first["label"].dtype == first["index"].dtype == first["view"].dtype == paddle.int64
    seen = Counter((i, v) for b in batches for i, v in zip(b["index"].numpy().tolist(), b["view"].numpy().tolist()))
    assert sorted(seen) == [(i, v) for i in range(8) for v in range(3)] and set(seen.values()) == {1}


@pytest.mark.parametrize("flip", [True, False])
def test_training_flip_can_be_turned_off(flip):
    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8)[None, None, :, None], (6, 32, 1, 3))  # [T, H, W, 3]
    record = {"num_frames": 6, "height": 32, "width": 48, "frames": ramp.tobytes()}
    sampler = ClipSampler(mode="tsn", seg_num=3, seglen=1, short_side=None, crop_size=32, flip=flip)
    rng = np.random.default_rng(0)
    rising = [np.diff(sampler.train_clip(record, rng)[0, 0, :, 0].astype(int)).mean() > 0 for _ in range(20)]
    assert all(rising) is not flip and any(rising)


@pytest.mark.parametrize("config, overrides", [
    ("tsn", []), ("stnet", ["data.test_views=3crop"]), ("non_local", ["data.test.test_views=10clip"]),
])
@pytest.mark.parametrize("train", [False, True])
def test_task_inputs_of_uint8_frames_equal_the_float_path(caches, config, overrides, train):
    """A batch of uint8 clips becomes, in the task's inputs, exactly the clips that the dataset
    normalises with numpy when asked to (the same seed draws the same training clips)."""
    task = make_task(load_config(config, f"{config}_tiny", [*overrides, "model.num_classes=4",
                                                           f"data.short_side={SHORT_SIDE}"]))
    cache = open_cache(caches["jpeg"])
    stored = task.dataset(cache, train=train)
    floats = KineticsClips(cache, stored.sampler, train=train, shuffle_buffer=stored.shuffle_buffer,
                           seed=stored.seed, normalized=True)
    [batch] = list(make_loader(stored, batch_size=100, num_workers=0))
    [expected] = list(make_loader(floats, batch_size=100, num_workers=0))
    assert batch["frames"].dtype == paddle.uint8 and expected["frames"].dtype == paddle.float32
    [inputs] = task.inputs(batch)
    assert inputs.dtype == paddle.float32
    np.testing.assert_array_equal(inputs.numpy(), task.model_input(expected["frames"]).numpy())
    np.testing.assert_array_equal(task.inputs(expected)[0].numpy(), inputs.numpy())
