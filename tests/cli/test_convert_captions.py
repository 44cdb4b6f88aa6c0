"""vtk synth / convert anet-captions and tacos through the command line: conversions, exit
statuses, one-line usage errors, Ctrl-C and resuming."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.formats import open_cache
from videotk.pipelines.text import vocabulary_from_manifest

VTK = str(Path(sys.executable).parent / "vtk")


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def assert_usage_error(result, *words):
    """Exit 2, one ``Error:`` line (the last one) holding ``words``, no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert [line for line in lines if line.startswith("Error:")] == [lines[-1]], result.output
    assert all(word in lines[-1] for word in words), lines[-1]


@pytest.fixture(scope="module")
def anet(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-anet") / "raw"
    result = run("synth", "anet-captions", "--out", out, "--videos", 10, "--feature-dim", 6, "--seed", 2)
    assert result.exit_code == 0 and result.output.startswith(f"wrote 10 videos to {out}"), result.output
    return out


@pytest.fixture(scope="module")
def tacos(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-tacos") / "raw"
    result = run("synth", "tacos", "--out", out, "--movies", 4, "--min-frames", 520, "--max-frames", 600,
                 "--feature-dim", 5, "--sentence-dim", 4, "--legacy")
    assert result.exit_code == 0, result.output
    return out


def captions(src):
    return [src / "train.json", src / "val_1.json", src / "val_2.json"]


def convert_anet(src, out, *more):
    first, *rest = captions(src)
    return run("convert", "anet-captions", "--features", src / "features", "--captions", first, *rest, "--out", out,
               "--quiet", *more)


def test_convert_anet_captions(tmp_path, anet):
    result = convert_anet(anet, tmp_path / "cache", "--workers", 1, "--format", "hdf5")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("converted 10 videos from 10 inputs into 1 shards")
    cache = open_cache(tmp_path / "cache")
    assert cache.manifest["format"] == "hdf5" and len(cache) == 10
    assert vocabulary_from_manifest(cache.manifest).words[3:] == tuple(cache.manifest["classes"][3:])
    assert sorted({r["subset"] for r in cache}) == ["train", "val"]
    assert run("verify", tmp_path / "cache").exit_code == 0


def test_two_workers_give_the_same_cache(tmp_path, anet):
    assert convert_anet(anet, tmp_path / "one", "--workers", 1, "--videos-per-shard", 4).exit_code == 0
    result = convert_anet(anet, tmp_path / "two", "--workers", 2, "--videos-per-shard", 4)
    assert result.exit_code == 0, result.output
    one, two = open_cache(tmp_path / "one"), open_cache(tmp_path / "two")
    assert [s["sha256"] for s in one.shards] == [s["sha256"] for s in two.shards] and len(two.shards) == 3


def test_convert_tacos_both_layouts(tmp_path, tacos):
    result = run("convert", "tacos", "--features", tacos / "train", "--annotations", tacos / "train.json",
                 "--out", tmp_path / "train", "--quiet", "--workers", 1)
    assert result.exit_code == 0 and result.output.startswith("converted 3 movies from 3 inputs"), result.output
    result = run("convert", "tacos", "--features", tacos / "test", "--annotations", tacos / "test_clip-sentvec.pkl",
                 "--out", tmp_path / "test", "--quiet", "--workers", 1)
    assert result.exit_code == 0 and result.output.startswith("converted 1 movies"), result.output
    [record] = open_cache(tmp_path / "test")
    assert record["subset"] == "test" and record["num_frames"] > 0 and record["window_features"].shape[1] == 5


def test_a_failed_video_exits_1_and_is_named(tmp_path, anet, copy_of):
    src = copy_of(anet)
    broken = min((src / "features").iterdir())
    np.save(broken, np.zeros((3, 7), np.float32))
    result = convert_anet(src, tmp_path / "cache", "--workers", 1)
    assert result.exit_code == 1
    assert f"failed: {broken.name}" in result.output and "7 dimensions" in result.output
    assert "converted 9 videos" in result.output


def test_usage_errors(tmp_path, anet, tacos):
    assert_usage_error(convert_anet(anet, tmp_path / "c", "--features", tmp_path / "nothing"), "--features")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no features")
    assert_usage_error(run("convert", "anet-captions", "--features", tmp_path / "empty", "--captions",
                           anet / "train.json", "--out", tmp_path / "c"), "no feature files")
    (tmp_path / "train.json").write_text(json.dumps({"version": "VERSION 1.3", "database": {}}))
    assert_usage_error(run("convert", "anet-captions", "--features", anet / "features", "--captions",
                           tmp_path / "train.json", "--out", tmp_path / "c"), "not ActivityNet Captions")
    assert_usage_error(run("convert", "anet-captions", "--features", anet / "features", "--captions",
                           anet / "val_1.json", "--out", tmp_path / "c"), "give train.json")
    (tmp_path / "captions.json").write_text("{}")
    assert_usage_error(run("convert", "anet-captions", "--features", anet / "features", "--captions",
                           tmp_path / "captions.json", "--out", tmp_path / "c"), "cannot tell its subset")
    assert_usage_error(run("convert", "tacos", "--features", anet / "features", "--annotations", tacos / "train.json",
                           "--out", tmp_path / "c"), "no window feature files")
    assert_usage_error(run("convert", "tacos", "--features", tacos / "train", "--annotations", anet / "train.json",
                           "--out", tmp_path / "c"), "not TACoS annotations")
    assert_usage_error(run("synth", "tacos", "--out", anet), "is not empty")
    assert not (tmp_path / "c").exists()


def test_out_folders_that_hold_other_things(tmp_path, anet):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("mine")
    assert_usage_error(convert_anet(anet, tmp_path / "mine"), "holds no videotk cache (found data.csv)")
    assert (tmp_path / "mine" / "data.csv").read_text() == "mine"
    assert convert_anet(anet, tmp_path / "cache", "--workers", 1).exit_code == 0
    assert_usage_error(convert_anet(anet, tmp_path / "cache", "--workers", 1, "--min-count", 1),
                       "other options", "vocabulary", "--overwrite")
    again = convert_anet(anet, tmp_path / "cache", "--workers", 1)
    assert again.exit_code == 0 and "resumed: 1 tasks" in again.output


def test_ctrl_c_keeps_finished_shards_and_resumes(tmp_path):
    src = tmp_path / "src"
    assert run("synth", "anet-captions", "--out", src, "--videos", 240, "--feature-dim", 4).exit_code == 0
    out = tmp_path / "cache"
    command = [VTK, "convert", "anet-captions", "--features", str(src / "features"), "--captions",
               *map(str, captions(src)), "--out", str(out), "--videos-per-shard", "1", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal, deadline = out / ".journal", time.monotonic() + 120
    while not (journal.is_dir() and any(journal.glob("part-*.json"))):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stdout == "", stderr
    [line] = stderr.splitlines()
    assert line.startswith("interrupted: ") and "run the same command again to resume" in line
    assert not (out / "manifest.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
    whole = convert_anet(src, tmp_path / "whole", "--workers", 1, "--videos-per-shard", 1)
    assert whole.exit_code == 0
    assert [s["sha256"] for s in open_cache(out).shards] == [s["sha256"] for s in open_cache(tmp_path / "whole").shards]
