"""ActivityNet localization from the command line: synth, convert, train, eval, predict for BMN,
BSN's three stages and C-TCN, and what a careless user gets (one line, the right exit status)."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.evaluators.proposals import read_activitynet_results
from videotk.formats import open_cache, verify_cache

QUICK = ["-o", "train.epochs=1", "-q"]


def vtk(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic ActivityNet data converted from two feature layouts: BSN's csv (64 points) and
    C-TCN's score pickles; and a YouTube-8M cache to give to the wrong model."""
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    root = tmp_path_factory.mktemp("anet")
    ok = vtk("synth", "activitynet", "--out", root / "raw", "--videos", 24, "--tscale", 64, "--feature-dim", 64,
             "--seed", 3)
    assert ok.exit_code == 0, ok.output
    for features, out in (("csv_mean_64", "snippets"), ("ctcn", "scores")):
        ok = vtk("convert", "activitynet", "--features", root / "raw" / features, "--annotations",
                 root / "raw" / "activitynet_1.3_annotations.json", "--out", root / out, "--tscale", 64, "--quiet")
        assert ok.exit_code == 0, ok.output
    synth_youtube8m(root / "yt8m-raw", num_files=1, videos_per_file=4, num_classes=4, min_frames=5, max_frames=10)
    convert_youtube8m(root / "yt8m-raw", root / "yt8m", workers=1)
    return root


def test_bmn_trains_evaluates_with_a_curve_and_predicts_activitynet_results(data, tmp_path):
    run = tmp_path / "run"
    ok = vtk("train", "bmn", "--config", "bmn_tiny", "--shards", data / "snippets", "--valid-shards", data / "snippets",
             "--save-dir", run, *QUICK)
    assert ok.exit_code == 0, ok.output
    ok = vtk("eval", "bmn", "--weights", run / "epoch_000", "--shards", data / "snippets", "--plot", tmp_path / "ar.png")
    assert ok.exit_code == 0, ok.output
    saved = json.loads((run / "epoch_000" / "metrics.json").read_text())
    assert {"auc", "ar@1", "ar@5", "ar@10", "ar@100"} <= set(saved) and len(saved["curve"]["an"]) == 100
    assert "\"curve\"" not in ok.output and (tmp_path / "ar.png").read_bytes()[:4] == b"\x89PNG"

    ok = vtk("predict", "bmn", "--weights", run / "epoch_000", "--shards", data / "snippets", "--out",
             tmp_path / "results.json")
    assert ok.exit_code == 0, ok.output
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["version"] == "VERSION 1.3" and "external_data" in written
    results = read_activitynet_results(tmp_path / "results.json")
    cache = open_cache(data / "snippets")
    durations = {v: d for v, d, s in zip(cache.column("id"), cache.column("duration"), cache.column("subset"))
                 if s == "validation"}
    assert set(results) == set(durations) and not any(v.startswith("v_") for v in results)
    for video, rows in results.items():
        assert 0 < len(rows) <= 20 and (rows[:, 0] >= 0).all() and (rows[:, 1] <= durations[video] + 0.01).all()


def test_bsn_runs_its_three_stages_and_resumes_the_unfinished_one(data, tmp_path):
    run = tmp_path / "bsn"
    args = ["train", "bsn", "--config", "bsn_tiny", "--shards", data / "snippets", "--valid-shards", data / "snippets",
            "--save-dir", run, "-o", "stages.pem.train.epochs=1", "-o", "data.pgm_workers=2", *QUICK]
    ok = vtk(*args)
    assert ok.exit_code == 0, ok.output
    for name in ("train", "valid"):
        derived = open_cache(run / "pgm" / name)
        assert derived.kind == "bsn-proposals" and not verify_cache(run / "pgm" / name)
        assert set(derived.column("subset")) == ({"training"} if name == "train" else {"validation"})
    assert (run / "tem" / "epoch_000").is_dir() and (run / "pem" / "epoch_000").is_dir()
    pgm_manifest = (run / "pgm" / "train" / "manifest.json").read_bytes()

    shutil.rmtree(run / "pem")                        # as if stopped during PEM
    ok = vtk(*args, "--resume", "latest")
    assert ok.exit_code == 0, ok.output
    assert (run / "pem" / "epoch_000").is_dir()
    assert (run / "pgm" / "train" / "manifest.json").read_bytes() == pgm_manifest   # TEM and PGM were kept

    ok = vtk("eval", "bsn", "--weights", run / "pem" / "epoch_000", "--shards", data / "snippets")
    assert ok.exit_code == 0, ok.output and "auc" in ok.output
    one_line_error(vtk("export", "bsn", "--weights", run / "pem" / "epoch_000", "--out", tmp_path / "x"), 2,
                   "cannot be exported")
    one_line_error(vtk(*args, "--resume", run / "tem" / "epoch_000"), 2, "--resume latest")


def test_ctcn_trains_and_predicts_labelled_detections(data, tmp_path):
    run = tmp_path / "ctcn"
    ok = vtk("train", "ctcn", "--config", "ctcn_tiny", "--shards", data / "scores", "--save-dir", run,
             "-o", "train.batch_size=4", *QUICK)
    assert ok.exit_code == 0, ok.output
    ok = vtk("eval", "ctcn", "--weights", run / "epoch_000", "--shards", data / "scores")
    assert ok.exit_code == 0, ok.output
    saved = json.loads((run / "epoch_000" / "metrics.json").read_text())
    assert {f"map@{t}" for t in ("0.5", "0.75", "0.95")} | {"average_map"} <= set(saved)
    ok = vtk("predict", "ctcn", "--weights", run / "epoch_000", "--shards", data / "scores", "--out",
             tmp_path / "det.json", "--topk", 5)
    assert ok.exit_code == 0, ok.output
    classes = open_cache(data / "scores").classes
    for entries in json.loads((tmp_path / "det.json").read_text())["results"].values():
        assert len(entries) <= 5 and all(e["label"] in classes for e in entries)


@pytest.mark.parametrize("model, config, cache, overrides, needles", [
    ("bmn", "bmn_tiny", "yt8m", [], ["'youtube8m-frame' cache", "vtk convert activitynet"]),
    ("bmn", "bmn_tiny", "scores", [], ["C-TCN's rgb and flow score sequences", "bmn reads snippet features"]),
    ("ctcn", "ctcn_tiny", "snippets", [], ["snippet features", "ctcn reads C-TCN's"]),
    ("bmn", "bmn_tiny", "snippets", ["-o", "model.tscale=32", "-o", "model.dscale=16"],
     ["rescaled to 64 points, but the model's tscale is 32", "--tscale 32"]),
    ("bsn", "bsn_tiny", "snippets", ["-o", "model.feat_dim=400"], ["dimension 64", "model.feat_dim=64"]),
    ("ctcn", "ctcn_tiny", "scores", ["-o", "model.num_classes=2"], ["4 classes", "model.num_classes=4"]),
    ("bmn", "bmn_tiny", "snippets", ["-o", "data.eval_subsets=[testing]"], ["no ground-truth segments"]),
    ("bmn", "bmn_tiny", "snippets", ["-o", "data.train_subsets=[train]"], ["unknown subset 'train'"]),
])
def test_the_wrong_cache_or_settings_end_in_one_line(data, tmp_path, model, config, cache, overrides, needles):
    result = vtk("train", model, "--config", config, "--shards", data / cache, "--save-dir", tmp_path / "run",
                 *overrides, *QUICK)
    one_line_error(result, 2, *needles)
    assert not (tmp_path / "run").exists()


def test_predict_on_the_testing_subset_without_ground_truth(data, tmp_path):
    run = tmp_path / "run"
    ok = vtk("train", "bmn", "--config", "bmn_tiny", "--shards", data / "snippets", "--save-dir", run, *QUICK)
    assert ok.exit_code == 0, ok.output
    ok = vtk("predict", "bmn", "--weights", run / "epoch_000", "--shards", data / "snippets", "--out",
             tmp_path / "test.json", "-o", "data.eval_subsets=[testing]")
    assert ok.exit_code == 0, ok.output
    cache = open_cache(data / "snippets")
    testing = {v for v, s in zip(cache.column("id"), cache.column("subset")) if s == "testing"}
    assert set(json.loads((tmp_path / "test.json").read_text())["results"]) == testing
    one_line_error(vtk("eval", "bmn", "--weights", run / "epoch_000", "--shards", data / "snippets",
                       "-o", "data.eval_subsets=[testing]"), 2, "no ground-truth segments")


def test_synth_segment_options_are_checked(tmp_path):
    one_line_error(vtk("synth", "activitynet", "--out", tmp_path / "x", "--segment-length", 0.5, 0.2), 2,
                   "segment_length")
    assert not Path(tmp_path / "x").exists() or not any(Path(tmp_path / "x").iterdir())
