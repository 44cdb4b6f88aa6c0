"""TACoS conversion: real window .npy files, the plain JSON + npy annotations and the legacy pickles
(written by pickle itself), the runner in this process; records equal to the inputs, accounting."""

import json
import pickle
import shutil

import numpy as np
import pytest

from videotk.formats import open_cache, read_errors, verify_cache
from videotk.pipelines.synth_captions import synth_tacos
from videotk.pipelines.tacos import AnnotationError, FeaturesError, convert_tacos, find_windows

DIM, SENTENCE_DIM = 6, 5


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp("tacos")
    synth_tacos(root / "src", movies=4, min_frames=520, max_frames=700, feature_dim=DIM, sentence_dim=SENTENCE_DIM,
                legacy=True, seed=5)
    return root / "src"


@pytest.fixture
def copy(tmp_path, src):
    return shutil.copytree(src, tmp_path / "src")


def load(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_records_equal_the_inputs(tmp_path, src, fmt):
    summary = convert_tacos(src / "train", src / "train.json", tmp_path / "cache", fmt=fmt, movies_per_shard=2,
                            workers=1)
    assert (summary.records, summary.shards, summary.failed, summary.missing, summary.skipped) == (3, 2, 0, 0, 0)
    cache = open_cache(tmp_path / "cache")
    assert cache.kind == "tacos" and verify_cache(tmp_path / "cache") == []
    assert cache.manifest["options"]["subset"] == "train"
    annotations, vectors = load(src / "train.json"), np.load(src / "train_sentvec.npy")
    files = sorted(p.name for p in (src / "train").iterdir())
    records = {r["id"]: r for r in cache}
    assert sorted(records) == sorted(annotations["movies"])
    for movie, entry in annotations["movies"].items():
        record = records[movie]
        assert record["subset"] == "train" and record["num_frames"] == entry["num_frames"]
        names = [f"{movie}.avi_{s}_{e}.npy" for s, e in record["windows"]]
        assert sorted(names) == [f for f in files if f.startswith(movie + ".avi_")]
        assert [tuple(w) for w in record["windows"]] == sorted(tuple(w) for w in record["windows"])
        assert record["windows"].dtype == np.int32 and record["window_features"].dtype == np.float32
        np.testing.assert_array_equal(record["window_features"], np.stack([np.load(src / "train" / n) for n in names]))
        np.testing.assert_array_equal(record["sentence_spans"], [s["span"] for s in entry["sentences"]])
        np.testing.assert_array_equal(record["sentence_vectors"], vectors[[s["vector"] for s in entry["sentences"]]])
        assert list(record["sentences"]) == [s["text"] for s in entry["sentences"]]


def test_the_legacy_pickles_give_the_same_records_without_text(tmp_path, src):
    convert_tacos(src / "test", src / "test.json", tmp_path / "json", workers=1)
    summary = convert_tacos(src / "test", src / "test_clip-sentvec.pkl", tmp_path / "legacy", workers=1)
    assert summary.records == 1 and summary.failed == 0
    plain, legacy = open_cache(tmp_path / "json"), open_cache(tmp_path / "legacy")
    assert legacy.manifest["options"]["subset"] == "test"
    assert legacy.manifest["options"]["frame_counts"] == str(src / "video_allframes_info.pkl")
    for a, b in zip(plain, legacy):
        for key in ("id", "subset", "num_frames"):
            assert a[key] == b[key]
        for key in ("windows", "window_features", "sentence_spans", "sentence_vectors"):
            np.testing.assert_array_equal(a[key], b[key])
        assert list(b["sentences"]) == [""] * len(a["sentences"])


def test_legacy_layout_details(tmp_path, copy):
    """Python 2 pickles hold byte strings; vectors may be a [k, E] array; without a frame-count
    file the frame count is -1."""
    items = pickle.loads((copy / "test_clip-sentvec.pkl").read_bytes())
    py2 = [(name.encode(), np.stack(vectors)) for name, vectors in items]
    (copy / "test_clip-sentvec.pkl").write_bytes(pickle.dumps(py2, protocol=2))
    (copy / "video_allframes_info.pkl").unlink()
    convert_tacos(copy / "test", copy / "test_clip-sentvec.pkl", tmp_path / "cache", workers=1)
    [record] = open_cache(tmp_path / "cache")
    assert record["num_frames"] == -1
    assert len(record["sentence_vectors"]) == sum(len(v) for _, v in py2)
    counts = {f"{record['id']}.avi": 1234}
    (tmp_path / "frames.pkl").write_bytes(pickle.dumps(counts, protocol=2))
    convert_tacos(copy / "test", copy / "test_clip-sentvec.pkl", tmp_path / "counted", frame_counts=tmp_path / "frames.pkl",
                  workers=1)
    assert open_cache(tmp_path / "counted")[0]["num_frames"] == 1234


def test_missing_skipped_and_failed_are_accounted_for(tmp_path, copy):
    annotations = load(copy / "train.json")
    first, second, third = sorted(annotations["movies"])
    for path in (copy / "train").glob(f"{first}.avi_*.npy"):
        path.unlink()  # missing
    shutil.copy(next((copy / "test").glob("*.npy")), copy / "train")  # skipped: a movie of the test subset
    (copy / "train" / "notes.npy").write_bytes(b"x")  # skipped: not a window name
    broken = sorted((copy / "train").glob(f"{second}.avi_*.npy"))[3]
    broken.write_bytes(b"\x93NUMPY broken")  # failed: the whole movie
    annotations["movies"][third]["sentences"][0]["vector"] = 10_000  # failed: bad entry
    annotations["movies"]["s99-d99"] = {"num_frames": 10, "sentences": []}  # missing
    (copy / "train.json").write_text(json.dumps(annotations))

    summary = convert_tacos(copy / "train", copy / "train.json", tmp_path / "cache", workers=1)
    assert (summary.records, summary.failed, summary.missing, summary.skipped, summary.exit_code) == (0, 2, 2, 2, 1)
    errors = {(e["status"], e["source"], e["item"]): e["reason"] for e in read_errors(tmp_path / "cache")}
    assert "no window files" in errors["missing", "train.json", first]
    assert "no window files" in errors["missing", "train.json", "s99-d99"]
    assert "not named" in errors["skipped", "notes.npy", None]
    assert any(k[0] == "skipped" and "1 window files of a movie not in train.json" in v for k, v in errors.items())
    assert "cannot read the window" in errors["failed", broken.name, second]
    assert "is not a row of the" in errors["failed", "train.json", third]


WINDOW_NAMES = [("s13-d21", 0, 64), ("s13-d21", 12, 76), ("s2", 1, 2), ("s30-d41_x", 5, 9)]


def test_window_files_are_parsed(tmp_path):
    for name in ("s13-d21.avi_12_76.npy", "s13-d21.avi_0_64.npy", "s30-d41_x.avi_5_9.npy", "s2_1_2.npy", "s2.avi.npy"):
        np.save(tmp_path / name, np.zeros(2, np.float32))
    windows, errors = find_windows(tmp_path)
    assert [(m, w.start, w.end) for m, found in sorted(windows.items()) for w in found] == WINDOW_NAMES
    assert [e["source"] for e in errors] == ["s2.avi.npy"]


def test_refusals_before_any_work(tmp_path, src):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeaturesError, match="no window feature files"):
        convert_tacos(tmp_path / "empty", src / "train.json", tmp_path / "cache")
    (tmp_path / "other.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(AnnotationError, match="not TACoS annotations"):
        convert_tacos(src / "train", tmp_path / "other.json", tmp_path / "cache")
    (tmp_path / "train_clip-sentvec.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(AnnotationError, match="not a TACoS clip-sentvec pickle"):
        convert_tacos(src / "train", tmp_path / "train_clip-sentvec.pkl", tmp_path / "cache")
    with pytest.raises(FeaturesError, match="no window file belongs to a movie of test.json"):
        convert_tacos(src / "train", src / "test.json", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
