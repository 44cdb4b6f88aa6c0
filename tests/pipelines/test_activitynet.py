"""ActivityNet sources: BSN's rescaling, both annotation layouts, and finding the feature files."""

import json

import h5py
import numpy as np
import pytest

from videotk.pipelines.activitynet import (
    AnnotationError,
    FeatureError,
    find_features,
    read_annotations,
    read_features,
    rescale_bsn,
)
from videotk.pipelines.synth_activitynet import synth_activitynet


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_activitynet(tmp_path_factory.mktemp("anet"), num_videos=12, num_classes=3, feature_dim=8, seed=1)


def bsn_by_hand(data: np.ndarray, num_prop: int, st: float) -> np.ndarray:
    """BSN's procedure written out bin by bin: snippet centres st/2 + i*st, linear interpolation,
    bins of corrected_second = len*st, clamped 1e-4 s inside the first and last centre, 3 samples
    mean-pooled, zeros for bins outside the centres."""
    if len(data) == 1:
        return np.stack([data[0]] * num_prop)
    x = [st / 2 + i * st for i in range(len(data))]
    corrected_second = len(data) * st
    rows = []
    for k in range(num_prop):
        xmin = max(x[0] + 0.0001, 1.0 / num_prop * k * corrected_second)
        xmax = min(x[-1] - 0.0001, 1.0 / num_prop * (k + 1) * corrected_second)
        if xmax < x[0] or xmin > x[-1]:
            rows.append(np.zeros(data.shape[1]))
            continue
        plen = (xmax - xmin) / 2
        samples = [xmin + plen * i for i in range(3)]
        values = np.stack([[np.interp(s, x, data[:, d]) for d in range(data.shape[1])] for s in samples])
        rows.append(values.mean(axis=0))
    return np.stack(rows)


@pytest.mark.parametrize("length, tscale, st", [(7, 100, 0.5333), (37, 100, 0.64), (100, 100, 0.5), (250, 100, 0.533),
                                                (400, 32, 0.66), (2, 16, 1.0), (1, 10, 0.5)])
def test_rescale_is_bsns_procedure(length, tscale, st):
    data = np.random.default_rng(length).standard_normal((length, 5))
    got = rescale_bsn(data, tscale, snippet_seconds=st)
    assert got.shape == (tscale, 5)
    np.testing.assert_allclose(got, bsn_by_hand(data, tscale, st), rtol=1e-9, atol=1e-12)


def test_short_videos_get_zero_rows_at_both_ends_as_in_bsn():
    got = rescale_bsn(np.ones((7, 3)), 100, snippet_seconds=0.5)
    assert (got[0] == 0).all() and (got[-1] == 0).all() and (got[40:60] == 1).all()


def test_both_layouts_give_the_same_videos_with_bare_ids(synth):
    official = read_annotations(synth.official_json)
    bsn = read_annotations(synth.bsn_json)
    per_video = read_annotations(synth.per_video_json)
    assert (official.layout, bsn.layout, per_video.layout) == ("activitynet", "bsn", "bsn")
    assert official.classes == bsn.classes == synth.classes
    assert set(official.videos) == set(bsn.videos) and not any(v.startswith("v_") for v in official.videos)
    for video_id, video in official.videos.items():
        other = bsn.videos[video_id]
        assert (video.subset, video.duration, video.segments, video.labels) == \
            (other.subset, other.duration, other.segments, other.labels)
        assert video.duration_frame == -1 and other.duration_frame > 0 and other.feature_frame % 16 == 0
    assert bsn.videos == per_video.videos  # BSN's file has no subset: video_info_new.csv beside it gives it
    assert {v.subset for v in bsn.videos.values()} == {"training", "validation", "testing"}
    assert all(not v.segments for v in bsn.videos.values() if v.subset == "testing")


def test_video_info_columns_are_used_where_present(tmp_path):
    (tmp_path / "anet.json").write_text(json.dumps({"v_abc": {"duration_second": 10.0, "duration_frame": 300,
                                                              "annotations": [{"segment": [1, 2], "label": "B"}]}}))
    (tmp_path / "video_info_new.csv").write_text("video,numFrame,seconds,subset\nv_abc,240,9.5,validation\n")
    (video,) = read_annotations(tmp_path / "anet.json").videos.values()
    assert (video.id, video.subset, video.duration, video.duration_frame, video.feature_frame) == \
        ("abc", "validation", 9.5, 240, -1)


def test_unusable_entries_are_failed_and_the_rest_kept(tmp_path):
    database = {"good": {"subset": "training", "duration": 20, "annotations": [{"segment": [1, 5], "label": "A"}]},
                "backwards": {"subset": "training", "duration": 20, "annotations": [{"segment": [5, 1], "label": "A"}]},
                "words": {"subset": "training", "duration": 20, "annotations": [{"segment": "1-5", "label": "A"}]},
                "no_duration": {"subset": "training", "annotations": []}}
    taxonomy = [{"nodeId": 1, "nodeName": "Root", "parentId": None}, {"nodeId": 2, "nodeName": "Z", "parentId": 1},
                {"nodeId": 3, "nodeName": "A", "parentId": 1}]
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}))
    found = read_annotations(path)
    assert list(found.videos) == ["good"] and found.classes == ["A", "Z"]
    reasons = {e["item"]: e["reason"] for e in found.errors}
    assert set(reasons) == {"backwards", "words", "no_duration"}
    assert all(e["status"] == "failed" and e["source"] == "anet.json" for e in found.errors)
    assert "start <= end" in reasons["backwards"] and "duration" in reasons["no_duration"]


@pytest.mark.parametrize("content", ['{"results": {}}', "[1, 2]", '{"v_a": 3}', "not json"])
def test_a_file_of_neither_layout_is_refused(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match="x.json"):
        read_annotations(path)


def test_feature_kinds_are_found_from_the_files(synth, tmp_path):
    ids = read_annotations(synth.official_json).videos
    assert find_features(synth.csv_dir, ids).kind == "csv"
    assert find_features(synth.npy_dir, ids).kind == "npy"
    scores = find_features(synth.ctcn_dir, ids)
    assert scores.kind == "scores" and scores.feature_kind == "scores" and len(scores.files) == 12
    assert all(len(f.paths) == 2 and "rgb" in f.sources[0] and "flow" in f.sources[1] for f in scores.files)

    with h5py.File(tmp_path / "all.h5", "w") as handle:
        handle["v_one"] = np.ones((5, 3), np.float32)
        handle.create_group("v_two").create_dataset("c3d_features", data=np.zeros((4, 3)))
    found = find_features(tmp_path / "all.h5", ids)
    assert found.kind == "h5-videos" and [f.key for f in found.files] == ["v_one", "v_two"]
    assert read_features("h5-videos", found.files[1]).shape == (4, 3)


def test_feature_folders_of_several_kinds_or_none_are_refused(synth, tmp_path):
    (tmp_path / "a.npy").write_bytes(b"")
    (tmp_path / "b.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="several kinds"):
        find_features(tmp_path, {})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing")
    with pytest.raises(ValueError, match="no feature files found"):
        find_features(tmp_path / "empty", {})


def test_csv_features_with_and_without_header(tmp_path):
    from videotk.pipelines.activitynet import FeatureFile

    (tmp_path / "h.csv").write_text("f0,f1\n1,2\n3,4.5\n")
    (tmp_path / "n.csv").write_text("1,2\n3,4.5\n")
    (tmp_path / "r.csv").write_text("f0,f1\n1,2\n3\n")
    for name in ("h", "n"):
        got = read_features("csv", FeatureFile(name, (str(tmp_path / f"{name}.csv"),), (f"{name}.csv",)))
        np.testing.assert_array_equal(got, [[1, 2], [3, 4.5]])
    with pytest.raises(FeatureError, match="cannot be read"):
        read_features("csv", FeatureFile("r", (str(tmp_path / "r.csv"),), ("r.csv",)))
