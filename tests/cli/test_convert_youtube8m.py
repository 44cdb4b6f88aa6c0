import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.reference import assert_records_equal, tensorflow_records
from videotk.cli.main import cli
from videotk.formats import open_cache, read_errors, verify_cache

VTK = str(Path(sys.executable).parent / "vtk")
SHARD_NAME = re.compile(r"part-\d{5}-[0-9a-f]{12}\.(parquet|h5)")


def convert(*args):
    return CliRunner().invoke(cli, ["convert", "youtube8m", "--quiet", *map(str, args)])


def assert_cache_equals_tensorflow(cache_dir, src, level, segments=False):
    cache = open_cache(cache_dir)
    want = [r for path in sorted(Path(src).glob("*.tfrecord")) for r in tensorflow_records(path, level, segments)]
    assert len(cache) == len(want)
    for got, expected in zip(cache, want):
        assert_records_equal(got, expected)


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
@pytest.mark.parametrize("source", ["frame", "video", "2019"])
def test_convert_equals_tensorflow_field_by_field(tmp_path, request, fmt, source):
    src = request.getfixturevalue({"frame": "yt8m_frame_src", "video": "yt8m_video_src", "2019": "yt8m_segment_src"}[source])
    level = "video" if source == "video" else "frame"
    result = convert("--src", src, "--out", tmp_path / "cache", "--format", fmt, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "failed 0, missing 0" in result.output

    assert_cache_equals_tensorflow(tmp_path / "cache", src, level, segments=source == "2019")
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    inputs = sorted(p.name for p in Path(src).glob("*.tfrecord"))
    assert manifest["kind"] == f"youtube8m-{level}"
    assert [s["sources"] for s in manifest["shards"]] == [[name] for name in inputs]
    assert all(SHARD_NAME.fullmatch(s["file"]) for s in manifest["shards"])
    assert manifest["options"]["segments"] is (source == "2019")
    assert verify_cache(tmp_path / "cache") == []


def test_every_frame_is_kept_beyond_300(tmp_path):
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    synth_youtube8m(tmp_path / "src", num_files=1, videos_per_file=2, min_frames=350, max_frames=360)
    assert convert("--src", tmp_path / "src", "--out", tmp_path / "cache", "--workers", 1).exit_code == 0
    frames = open_cache(tmp_path / "cache").column("num_frames")
    assert min(frames) >= 350


def flip_byte_in_record(path: Path, record: int) -> None:
    """Flip one byte inside the data of record ``record`` (its framing stays intact)."""
    data = bytearray(path.read_bytes())
    offset = 0
    for _ in range(record):
        length = int.from_bytes(data[offset : offset + 8], "little")
        offset += 12 + length + 4
    length = int.from_bytes(data[offset : offset + 8], "little")
    data[offset + 12 + length // 2] ^= 0x55
    path.write_bytes(bytes(data))


def test_bad_inputs_are_accounted_for_and_the_rest_is_converted(tmp_path, copy_of, yt8m_frame_src, yt8m_video_src):
    src = copy_of(yt8m_frame_src)
    first, second, third = sorted(src.glob("*.tfrecord"))
    flip_byte_in_record(first, 3)
    second.write_bytes(second.read_bytes()[: second.stat().st_size * 2 // 3])
    shutil.copy(sorted(yt8m_video_src.glob("*.tfrecord"))[0], src / "train9000.tfrecord")
    (src / "train9001.tfrecord").write_bytes(b"")

    result = convert("--src", src, "--out", tmp_path / "cache", "--workers", 1)
    assert result.exit_code == 1, result.output

    errors = read_errors(tmp_path / "cache")
    by_source = {}
    for entry in errors:
        by_source.setdefault(entry["source"], []).append(entry)
    assert entry["status"] == "failed"
    assert [e["item"] for e in by_source[first.name]] == [3]
    assert "crc" in by_source[first.name][0]["reason"]
    assert "truncated" in by_source[second.name][0]["reason"]
    assert len(by_source["train9000.tfrecord"]) == 8
    assert all("video-level" in e["reason"] and "--level video" in e["reason"] for e in by_source["train9000.tfrecord"])
    assert by_source["train9001.tfrecord"][0]["reason"].startswith("empty file")
    assert third.name not in by_source
    assert f"failed {len(errors)}" in result.output

    cache = open_cache(tmp_path / "cache")
    converted = [r["id"] for r in cache]
    reference = {p.name: [r["id"] for r in tensorflow_records(yt8m_frame_src / p.name, "frame")] for p in (first, third)}
    bad_id = reference[first.name][3]
    assert bad_id not in converted
    assert set(reference[first.name]) - {bad_id} <= set(converted)
    assert set(reference[third.name]) <= set(converted)
    assert verify_cache(tmp_path / "cache") == []


def test_level_is_detected_and_can_be_forced(tmp_path, yt8m_video_src):
    result = convert("--src", yt8m_video_src, "--out", tmp_path / "forced", "--level", "frame", "--workers", 1)
    assert result.exit_code == 1
    reasons = {e["reason"] for e in read_errors(tmp_path / "forced")}
    assert len(reasons) == 1 and "video-level" in reasons.pop()
    assert len(open_cache(tmp_path / "forced")) == 0


def test_ids_and_file_names_never_become_paths(tmp_path):
    import tensorflow as tf

    src = tmp_path / "src"
    src.mkdir()
    with tf.io.TFRecordWriter(str(src / "..evil name.tfrecord")) as writer:
        for video_id in ("../../escaped", "/etc/passwd", "a/b"):
            example = tf.train.SequenceExample()
            example.context.feature["id"].bytes_list.value.append(video_id.encode())
            example.context.feature["labels"].int64_list.value.append(1)
            example.feature_lists.feature_list["rgb"].feature.add().bytes_list.value.append(bytes(1024))
            example.feature_lists.feature_list["audio"].feature.add().bytes_list.value.append(bytes(128))
            writer.write(example.SerializeToString())
    before = set(tmp_path.rglob("*"))
    assert convert("--src", src, "--out", tmp_path / "cache", "--workers", 1).exit_code == 0
    created = set(tmp_path.rglob("*")) - before
    assert all((tmp_path / "cache") in p.parents or p == tmp_path / "cache" for p in created)
    assert all(SHARD_NAME.fullmatch(p.name) for p in (tmp_path / "cache" / "shards").iterdir())
    assert [r["id"] for r in open_cache(tmp_path / "cache")] == ["../../escaped", "/etc/passwd", "a/b"]


def test_usage_errors_exit_2(tmp_path, yt8m_frame_src):
    assert convert("--src", tmp_path / "nothing", "--out", tmp_path / "c").exit_code == 2
    (tmp_path / "empty").mkdir()
    result = convert("--src", tmp_path / "empty", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "no .tfrecord files" in result.output

    assert convert("--src", yt8m_frame_src, "--out", tmp_path / "c", "--workers", 1).exit_code == 0
    result = convert("--src", yt8m_frame_src, "--out", tmp_path / "c", "--format", "hdf5", "--workers", 1)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert convert("--src", yt8m_frame_src, "--out", tmp_path / "c", "--format", "hdf5", "--workers", 1,
                   "--overwrite").exit_code == 0
    assert open_cache(tmp_path / "c").manifest["format"] == "hdf5"


def test_distributed_scheduler_gives_the_same_cache(tmp_path, yt8m_frame_src):
    from dask.distributed import LocalCluster

    assert convert("--src", yt8m_frame_src, "--out", tmp_path / "local", "--workers", 1).exit_code == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = convert("--src", yt8m_frame_src, "--out", tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    local, remote = open_cache(tmp_path / "local"), open_cache(tmp_path / "dask")
    assert [s["sha256"] for s in local.shards] == [s["sha256"] for s in remote.shards]
    assert [r["id"] for r in local] == [r["id"] for r in remote]


def test_resume_after_kill_9_gives_the_uninterrupted_cache(tmp_path):
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    src = tmp_path / "src"
    synth_youtube8m(src, num_files=40, videos_per_file=6, min_frames=100, max_frames=300, seed=5)
    command = [VTK, "convert", "youtube8m", "--src", str(src), "--out", str(tmp_path / "killed"), "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards, journal = tmp_path / "killed" / "shards", tmp_path / "killed" / ".journal"
    deadline = time.monotonic() + 120
    while not (journal.is_dir() and len(list(journal.glob("part-*.json"))) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "the conversion ended before it could be killed"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "manifest.json").exists()
    finished_before = len([p for p in shards.iterdir() if p.suffix == ".parquet"])
    assert 0 < finished_before < 40
    (shards / "part-00039-0123456789ab.parquet.tmp-99999").write_bytes(b"half a shard")

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    assert not any(".tmp-" in p.name for p in shards.iterdir())

    assert convert("--src", src, "--out", tmp_path / "whole", "--workers", 1).exit_code == 0
    killed, whole = open_cache(tmp_path / "killed"), open_cache(tmp_path / "whole")
    assert len(killed) == len(whole) == 240
    assert [s["sha256"] for s in killed.shards] == [s["sha256"] for s in whole.shards]
    for got, want in zip(killed, whole):
        assert got["id"] == want["id"] and got["rgb"] == want["rgb"] and got["audio"] == want["audio"]


def test_vtk_runs_as_a_real_process(tmp_path, yt8m_frame_src):
    result = subprocess.run([VTK, "convert", "youtube8m", "--src", str(yt8m_frame_src), "--out", str(tmp_path / "c"),
                             "--workers", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("converted 24 videos from 3 inputs into 3 shards")
    version = subprocess.run([VTK, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "vtk, version" in version.stdout
