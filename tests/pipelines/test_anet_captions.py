"""ActivityNet Captions conversion: real feature files (.npy, .h5, pickles), real caption JSON, the
runner in this process; records equal to the inputs, the vocabulary, the accounting, resuming."""

import json
import pickle
import shutil

import h5py
import numpy as np
import pytest

from videotk.formats import CacheError, open_cache, read_errors, verify_cache
from videotk.pipelines.anet_captions import (
    CaptionsError,
    FeatureFileError,
    captions_subset,
    convert_anet_captions,
    read_captions,
    read_features,
)
from videotk.pipelines.synth_captions import synth_anet_captions
from videotk.pipelines.text import build_vocabulary, tokenize, vocabulary_from_manifest

DIM = 8


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet-captions")
    synth_anet_captions(root / "src", videos=12, feature_dim=DIM, seed=3)
    return root / "src"


@pytest.fixture
def copy(tmp_path, src):
    return shutil.copytree(src, tmp_path / "src")


def captions_of(src):
    return [src / "train.json", src / "val_1.json", src / "val_2.json"]


def load(path):
    return json.loads(path.read_text())


def convert(src, out, **kwargs):
    kwargs.setdefault("workers", 1)
    return convert_anet_captions(src / "features", captions_of(src), out, **kwargs)


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_records_equal_the_inputs(tmp_path, src, fmt):
    summary = convert(src, tmp_path / "cache", fmt=fmt, videos_per_shard=5)
    assert (summary.records, summary.shards, summary.failed, summary.missing, summary.skipped) == (12, 3, 0, 0, 0)
    cache = open_cache(tmp_path / "cache")
    assert cache.kind == "anet_captions" and cache.manifest["format"] == fmt and verify_cache(tmp_path / "cache") == []
    train, val_1, val_2 = (load(p) for p in captions_of(src))
    vocabulary = vocabulary_from_manifest(cache.manifest)
    assert vocabulary == build_vocabulary(tokenize(s) for v in train.values() for s in v["sentences"])
    assert cache.manifest["options"]["vocabulary"]["size"] == len(vocabulary) == 3 + 9

    records = {r["id"]: r for r in cache}
    assert sorted(records) == sorted(k[2:] for k in [*train, *val_1])
    for key, entry in train.items():
        assert_record(records[key[2:]], "train", [(entry, 1)], np.load(src / "features" / f"{key}.npy"), vocabulary)
    for key, entry in val_1.items():
        assert_record(records[key[2:]], "val", [(entry, 1), (val_2[key], 2)],
                      np.load(src / "features" / f"{key}.npy"), vocabulary)


def assert_record(record, subset, entries, features, vocabulary):
    assert record["subset"] == subset and record["duration"] == entries[0][0]["duration"]
    assert record["num_frames"] == len(features) and record["features"].dtype == np.float32
    np.testing.assert_array_equal(record["features"], features)
    stamps = [s for entry, _ in entries for s in entry["timestamps"]]
    sentences = [s for entry, _ in entries for s in entry["sentences"]]
    np.testing.assert_allclose(record["segments"], np.array(stamps, np.float32).reshape(-1, 2))
    assert list(record["reference"]) == [ref for entry, ref in entries for _ in entry["sentences"]]
    assert list(record["sentences"]) == sentences
    assert list(record["tokens"]) == [" ".join(tokenize(s)) for s in sentences]
    bounds = np.cumsum([0, *record["caption_lengths"]])
    ids = record["caption_ids"]
    assert [vocabulary.decode(ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])] == [tokenize(s) for s in sentences]


def test_every_feature_file_kind(tmp_path, copy):
    features = copy / "features"
    names = sorted(p.stem for p in features.glob("*.npy"))
    arrays = {name: np.load(features / f"{name}.npy") for name in names}
    for path in features.iterdir():
        path.unlink()
    layouts = ["bare.npy", "h5", "h5-named", "legacy", "dict-pickle", "py3-pickle"]
    for name, layout in zip(names, layouts * 2):
        array = arrays[name]
        if layout == "bare.npy":
            np.save(features / f"{name[2:]}.npy", array.astype(np.float64))
        elif layout.startswith("h5"):
            with h5py.File(features / f"{name}.h5", "w") as f:
                f.create_dataset("features" if layout == "h5" else name, data=array)
                if layout == "h5-named":
                    f.create_dataset("other", data=np.zeros(3))
        elif layout == "legacy":
            (features / name).write_bytes(pickle.dumps(array, protocol=2))
        elif layout == "dict-pickle":
            (features / f"{name}.pkl").write_bytes(pickle.dumps({b"features": array}, protocol=2))
        else:
            (features / f"{name}.pickle").write_bytes(pickle.dumps({name: array.tolist()}))
    summary = convert(copy, tmp_path / "cache")
    assert (summary.records, summary.failed, summary.missing, summary.skipped) == (12, 0, 0, 0)
    for record in open_cache(tmp_path / "cache"):
        np.testing.assert_allclose(record["features"], arrays["v_" + record["id"]], rtol=1e-6)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    (tmp_path / "v_x").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(FeatureFileError, match="refuses to load shutil.rmtree"):
        read_features(tmp_path / "v_x", "x")
    assert (tmp_path / "victim").is_dir()


@pytest.mark.parametrize("array, reason", [
    (np.zeros((0, 4)), "no frames"),
    (np.zeros(4), "expected \\[T, D\\]"),
    (np.array([["a", "b"]]), "not numbers"),
])
def test_unusable_feature_arrays(tmp_path, array, reason):
    np.save(tmp_path / "v_x.npy", array)
    with pytest.raises(FeatureFileError, match=reason):
        read_features(tmp_path / "v_x.npy", "x")


def test_missing_skipped_and_failed_are_accounted_for(tmp_path, copy):
    features = copy / "features"
    train, val_1 = load(copy / "train.json"), load(copy / "val_1.json")
    train_keys, val_keys = sorted(train), sorted(val_1)
    (features / f"{train_keys[0]}.npy").unlink()  # missing
    np.save(features / "v_notcaptioned.npy", np.zeros((4, DIM), np.float32))  # skipped
    shutil.copy(features / f"{train_keys[1]}.npy", features / f"{train_keys[1][2:]}.npy")  # skipped: second file
    (features / f"{train_keys[2]}.npy").write_bytes(b"not an npy file")  # failed
    np.save(features / f"{train_keys[3]}.npy", np.zeros((4, DIM + 1), np.float32))  # failed: other width
    train[train_keys[4]]["sentences"].append("one sentence too many")  # failed: bad entry
    train[val_keys[0]] = val_1[val_keys[0]]  # failed: a video in train and val
    (copy / "train.json").write_text(json.dumps(train))

    summary = convert(copy, tmp_path / "cache")
    assert (summary.failed, summary.missing, summary.skipped, summary.exit_code) == (5, 1, 2, 1)
    errors = {(e["status"], e["source"], e["item"]): e["reason"] for e in read_errors(tmp_path / "cache")}
    assert "no feature file" in errors["missing", "train.json", train_keys[0]]
    assert "no video notcaptioned" in errors["skipped", "v_notcaptioned.npy", None]
    assert "another feature file" in errors["skipped", f"{train_keys[1][2:]}.npy", train_keys[1][2:]]
    assert "magic string" in errors["failed", f"{train_keys[2]}.npy", train_keys[2][2:]]
    assert f"{DIM + 1} dimensions" in errors["failed", f"{train_keys[3]}.npy", train_keys[3][2:]]
    assert "timestamps but" in errors["failed", "train.json", train_keys[4]]
    assert "a video belongs to one subset" in errors["failed", "val_1.json", val_keys[0]]
    assert "a video belongs to one subset" in errors["failed", "val_2.json", val_keys[0]]

    records = {r["id"]: r for r in open_cache(tmp_path / "cache")}
    assert sorted(records) == sorted(k[2:] for k in [*train_keys[1:2], *train_keys[5:], *val_keys])
    assert records[val_keys[0][2:]]["subset"] == "train"  # the training file is read first
    assert verify_cache(tmp_path / "cache") == []


def test_resume_and_a_changed_vocabulary(tmp_path, copy):
    first = convert(copy, tmp_path / "cache", videos_per_shard=4)
    again = convert(copy, tmp_path / "cache", videos_per_shard=4)
    assert again.resumed == first.shards == 3 and again.records == first.records
    train = load(copy / "train.json")
    for entry in list(train.values())[:3]:
        entry["sentences"][0] = "A person juggles then juggles."
    (copy / "train.json").write_text(json.dumps(train))
    with pytest.raises(CacheError, match="vocabulary"):
        convert(copy, tmp_path / "cache", videos_per_shard=4)
    changed = convert(copy, tmp_path / "cache", videos_per_shard=4, overwrite=True)
    assert changed.resumed == 0
    assert "juggles" in vocabulary_from_manifest(open_cache(tmp_path / "cache").manifest)


def test_subsets_come_from_file_names():
    assert captions_subset("train.json") == ("train", 1)
    assert captions_subset("/data/val_1.json") == ("val", 1)
    assert captions_subset("captions_val_2.json") == ("val", 2)
    assert captions_subset("validation.json") == ("val", 1)
    with pytest.raises(CaptionsError, match="cannot tell its subset"):
        captions_subset("captions.json")


@pytest.mark.parametrize("content, message", [
    ({"version": "VERSION 1.3", "taxonomy": [], "database": {}}, "not ActivityNet Captions.*'version'"),
    (["v_a", "v_b"], "not ActivityNet Captions.*JSON list"),
])
def test_files_of_another_layout_are_refused(tmp_path, content, message):
    (tmp_path / "train.json").write_text(json.dumps(content))
    with pytest.raises(CaptionsError, match=message):
        read_captions([tmp_path / "train.json"])


def test_refusals_before_any_work(tmp_path, src):
    (tmp_path / "val_1.json").write_text("{not json")
    with pytest.raises(CaptionsError, match="not readable as JSON"):
        read_captions([tmp_path / "val_1.json"])
    with pytest.raises(CaptionsError, match="both val reference set 1"):
        read_captions([src / "val_1.json", tmp_path / "val_1.json"])
    with pytest.raises(CaptionsError, match="give train.json"):
        convert_anet_captions(src / "features", [src / "val_1.json"], tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_ids_with_and_without_v_match(tmp_path, copy):
    val_1 = load(copy / "val_1.json")
    (copy / "val_1.json").write_text(json.dumps({key[2:]: entry for key, entry in val_1.items()}))
    videos, errors = read_captions(captions_of(copy))
    assert errors == [] and len(videos) == 12
    assert all([e.reference for e in videos[key[2:]].events][-1] == 2 for key in val_1)
    summary = convert(copy, tmp_path / "cache")
    assert (summary.records, summary.missing, summary.skipped) == (12, 0, 0)
