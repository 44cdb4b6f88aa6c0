"""vtk convert activitynet: every feature layout through the runner, the accounting, and usage errors."""

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tests.cli.test_etl_errors import assert_usage_error
from videotk.cli.main import cli
from videotk.formats import open_cache, read_errors, verify_cache
from videotk.pipelines.synth_activitynet import synth_activitynet

FEATURES = {"snippets": "snippet_dir", "csv": "csv_dir", "npy": "npy_dir", "ctcn": "ctcn_dir"}
ANNOTATIONS = {"official": "official_json", "bsn": "bsn_json", "per_video": "per_video_json"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return synth_activitynet(tmp_path_factory.mktemp("anet-raw"), num_videos=16, num_classes=3, tscale=20,
                             feature_dim=12, seed=5)


def convert(features, annotations, out, *args):
    return CliRunner().invoke(cli, ["convert", "activitynet", "--quiet", "--features", str(features),
                                    "--annotations", str(annotations), "--out", str(out), "--tscale", "20",
                                    "--workers", "1", *map(str, args)])


def records(cache_dir):
    return sorted(open_cache(cache_dir), key=lambda r: r["id"])


@pytest.mark.parametrize("features, annotations, fmt", [("snippets", "bsn", "parquet"), ("csv", "official", "hdf5"),
                                                        ("npy", "per_video", "parquet"), ("ctcn", "official", "hdf5")])
def test_every_layout_converts_to_one_record_per_video(tmp_path, raw, features, annotations, fmt):
    result = convert(getattr(raw, FEATURES[features]), getattr(raw, ANNOTATIONS[annotations]), tmp_path / "c",
                     "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "converted 16 videos" in result.output and "failed 0, missing 0, skipped 0" in result.output
    cache = open_cache(tmp_path / "c")
    assert cache.kind == "activitynet" and cache.manifest["format"] == fmt and cache.classes == raw.classes
    options = cache.manifest["options"]
    scores = features == "ctcn"
    assert (options["feature_kind"], options["tscale"], options["feature_dim"]) == \
        (("scores", None, 8) if scores else ("snippet", 20, 12))
    truth = json.loads(raw.official_json.read_text())["database"]
    for record in records(tmp_path / "c"):
        entry = truth[record["id"]]
        assert record["subset"] == entry["subset"] and record["duration"] == entry["duration"]
        assert record["features"].dtype == np.float32 and record["features"].shape[1] == options["feature_dim"]
        snippets = len(np.load(raw.snippet_dir / f"v_{record['id']}.npy"))
        assert len(record["features"]) in ((snippets - 1, snippets) if scores else (20,))
        np.testing.assert_allclose(record["segments"], [a["segment"] for a in entry["annotations"]] or np.zeros((0, 2)))
        assert [raw.classes[i] for i in record["labels"]] == [a["label"] for a in entry["annotations"]]
        assert (record["duration_frame"] > 0) == (annotations != "official")
    assert {r["subset"] for r in records(tmp_path / "c")} == {"training", "validation", "testing"}
    assert verify_cache(tmp_path / "c") == []
    inspected = CliRunner().invoke(cli, ["inspect", str(tmp_path / "c")])
    assert inspected.exit_code == 0 and "activitynet cache" in inspected.output


def test_snippets_rescaled_at_conversion_equal_the_offline_csv_and_npy(tmp_path, raw):
    for name, features in (("snippets", raw.snippet_dir), ("csv", raw.csv_dir), ("npy", raw.npy_dir)):
        assert convert(features, raw.per_video_json, tmp_path / name).exit_code == 0
    snippets, from_csv, from_npy = (records(tmp_path / name) for name in ("snippets", "csv", "npy"))
    for a, b, c in zip(snippets, from_csv, from_npy):
        np.testing.assert_array_equal(a["features"], b["features"])
        np.testing.assert_array_equal(a["features"], c["features"])


def test_csv_and_h5_snippets_of_any_length_convert_like_npy(tmp_path, raw):
    (tmp_path / "csv").mkdir()
    (tmp_path / "h5").mkdir()
    with h5py.File(tmp_path / "all.h5", "w") as every:
        for path in sorted(raw.snippet_dir.glob("*.npy")):
            array = np.load(path)
            np.savetxt(tmp_path / "csv" / f"{path.stem}.csv", array, fmt="%.9g", delimiter=",")
            with h5py.File(tmp_path / "h5" / f"{path.stem[2:]}.h5", "w") as one:  # bare id: matches too
                one["features"] = array
            every.create_group(path.stem).create_dataset("c3d_features", data=array)
    assert convert(raw.snippet_dir, raw.bsn_json, tmp_path / "npy-cache").exit_code == 0
    want = records(tmp_path / "npy-cache")
    for name in ("csv", "h5", "all.h5"):
        result = convert(tmp_path / name, raw.bsn_json, tmp_path / f"{name}-cache")
        assert result.exit_code == 0, result.output
        got = records(tmp_path / f"{name}-cache")
        assert [r["id"] for r in got] == [r["id"] for r in want]
        for a, b in zip(got, want):  # text holds float32 to 9 digits: the last bit may differ
            np.testing.assert_allclose(a["features"], b["features"], rtol=1e-6, atol=1e-7)


def test_missing_skipped_and_failed_are_accounted_for(tmp_path, raw):
    features = tmp_path / "features"
    shutil.copytree(raw.snippet_dir, features)
    names = sorted(p.stem for p in features.glob("*.npy"))
    (features / f"{names[0]}.npy").unlink()
    np.save(features / "v_notannotated.npy", np.zeros((30, 12), np.float32))
    np.save(features / f"{names[1]}.npy", np.zeros((30, 11), np.float32))
    with_nan = np.load(features / f"{names[2]}.npy")
    with_nan[4, 3] = np.nan
    np.save(features / f"{names[2]}.npy", with_nan)
    (features / f"{names[3]}.npy").write_bytes(b"not an array")

    result = convert(features, raw.official_json, tmp_path / "c")
    assert result.exit_code == 1, result.output
    assert "converted 12 videos" in result.output and "failed 3, missing 1, skipped 1" in result.output
    errors = {(e["status"], e["item"] or e["source"]): e for e in read_errors(tmp_path / "c")}
    assert set(errors) == {("missing", names[0][2:]), ("skipped", "v_notannotated.npy"),
                           ("failed", names[1][2:]), ("failed", names[2][2:]), ("failed", names[3][2:])}
    assert "[T, 12]" in errors["failed", names[1][2:]]["reason"]
    assert "NaN" in errors["failed", names[2][2:]]["reason"] and errors["failed", names[2][2:]]["source"] == f"{names[2]}.npy"
    assert "cannot be read" in errors["failed", names[3][2:]]["reason"]
    assert names[0][2:] not in {r["id"] for r in records(tmp_path / "c")}
    assert verify_cache(tmp_path / "c") == []


def test_c_tcn_scores_are_cut_to_the_shorter_stream_and_concatenated(tmp_path, raw):
    from videotk.pipelines.legacy_pickle import load_legacy_pickle

    assert convert(raw.ctcn_dir, raw.official_json, tmp_path / "c").exit_code == 0
    record = records(tmp_path / "c")[0]
    subset = {"training": "train", "validation": "val", "testing": "test"}[record["subset"]]
    rgb, flow = (load_legacy_pickle(raw.ctcn_dir / f"{s}_{subset}" / f"v_{record['id']}.pkl")[b"scores"]
                 for s in ("rgb", "flow"))
    rows = min(len(rgb), len(flow))
    np.testing.assert_array_equal(record["features"], np.concatenate([rgb[:rows], flow[:rows]], axis=1))


def test_a_pickle_that_would_run_code_fails_its_video_only(tmp_path, raw):
    import os
    import pickle

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    features = tmp_path / "ctcn"
    shutil.copytree(raw.ctcn_dir, features)
    victim = sorted((features / "rgb_train").glob("*.pkl"))[0]
    victim.write_bytes(pickle.dumps({b"scores": RunsCode()}, protocol=2))
    result = convert(features, raw.official_json, tmp_path / "c")
    assert result.exit_code == 1 and not (tmp_path / "ran").exists()
    (error,) = read_errors(tmp_path / "c")
    assert error["source"] == f"rgb_train/{victim.name}" and "refuses to load" in error["reason"]


def test_same_inputs_same_cache_and_two_dask_workers_agree(tmp_path, raw):
    assert convert(raw.csv_dir, raw.official_json, tmp_path / "a", "--videos-per-shard", 5).exit_code == 0
    assert convert(raw.csv_dir, raw.official_json, tmp_path / "b", "--videos-per-shard", 5).exit_code == 0
    result = convert(raw.csv_dir, raw.official_json, tmp_path / "dask", "--videos-per-shard", 5, "--workers", 2)
    assert result.exit_code == 0, result.output
    shas = [[s["sha256"] for s in open_cache(tmp_path / name).shards] for name in ("a", "b", "dask")]
    assert len(shas[0]) == 4 and shas[0] == shas[1] == shas[2]


def test_an_interrupted_run_resumes_to_the_same_cache(tmp_path, raw):
    assert convert(raw.npy_dir, raw.bsn_json, tmp_path / "whole", "--videos-per-shard", 4).exit_code == 0
    assert convert(raw.npy_dir, raw.bsn_json, tmp_path / "cut", "--videos-per-shard", 4).exit_code == 0
    cut = tmp_path / "cut"
    (cut / "manifest.json").unlink()  # as a kill -9 leaves it: two tasks finished, two not
    for entry in sorted((cut / ".journal").glob("part-*.json"))[2:]:
        (cut / "shards" / json.loads(entry.read_text())["shard"]["file"]).unlink()
        entry.unlink()
    result = convert(raw.npy_dir, raw.bsn_json, cut, "--videos-per-shard", 4)
    assert result.exit_code == 0 and "resumed: 2 tasks were already done" in result.output
    assert [s["sha256"] for s in open_cache(cut).shards] == [s["sha256"] for s in open_cache(tmp_path / "whole").shards]


def test_usage_errors_are_one_line_and_exit_2(tmp_path, raw):
    assert_usage_error(convert(tmp_path / "nowhere", raw.official_json, tmp_path / "c"), "--features", "no such folder")
    assert_usage_error(convert(raw.csv_dir, tmp_path / "none.json", tmp_path / "c"), "--annotations", "no such file")
    (tmp_path / "empty").mkdir()
    assert_usage_error(convert(tmp_path / "empty", raw.official_json, tmp_path / "c"), "no feature files found")
    (tmp_path / "results.json").write_text(json.dumps({"version": "1.3", "results": {}}))
    assert_usage_error(convert(raw.csv_dir, tmp_path / "results.json", tmp_path / "c"), "neither the ActivityNet 1.3")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert_usage_error(convert(raw.csv_dir, raw.official_json, tmp_path / "busy"), "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "c").exists()

    assert convert(raw.csv_dir, raw.official_json, tmp_path / "done").exit_code == 0
    assert_usage_error(convert(raw.csv_dir, raw.official_json, tmp_path / "done", "--tscale", 10), "--overwrite")
    replaced = convert(raw.csv_dir, raw.official_json, tmp_path / "done", "--tscale", 10, "--overwrite")
    assert replaced.exit_code == 0
