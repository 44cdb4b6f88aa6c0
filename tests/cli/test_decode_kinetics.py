import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from videotk.cli.main import cli
from videotk.formats import open_cache, read_errors, verify_cache
from videotk.pipelines.synth_kinetics import write_bad_clips


def decode(*args):
    return CliRunner().invoke(cli, ["decode", "kinetics", "--quiet", *map(str, args)])


def csv_rows(src):
    with open(src / "kinetics.csv", newline="") as f:
        return list(csv.DictReader(f))


def clip_id(row):
    return f"{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}"


def test_decode_with_annotations(tmp_path, kinetics_src):
    result = decode("--src", kinetics_src, "--annotations", kinetics_src / "kinetics.csv", "--out", tmp_path / "c",
                    "--workers", 1, "--videos-per-shard", 3)
    assert result.exit_code == 0, result.output
    assert "converted 8 clips" in result.output and "missing 2" in result.output

    cache = open_cache(tmp_path / "c")
    rows = csv_rows(kinetics_src)
    classes = sorted({r["label"] for r in rows})
    assert cache.classes == classes
    assert len(cache.shards) == 3
    present = {clip_id(r): r["label"] for r in rows}
    for record in cache:
        assert record["label_name"] == present[record["id"]]
        assert record["label"] == classes.index(record["label_name"])
        assert record["fps"] == 25.0 and record["num_frames"] == len(record["frames"]) == 25
        assert min(record["height"], record["width"]) == 256
        assert abs(record["width"] / record["height"] - 160 / 120) < 0.01
        for jpeg in record["frames"][:3]:
            image = Image.open(io.BytesIO(jpeg))
            assert image.format == "JPEG" and image.size == (record["width"], record["height"])

    missing = [e for e in read_errors(tmp_path / "c") if e["status"] == "missing"]
    assert len(missing) == 2 and all(e["source"] == "kinetics.csv" for e in missing)
    assert {e["item"] for e in missing} == {clip_id(r) for r in rows} - {r["id"] for r in cache}


def test_labels_from_class_folders_and_broken_clips(tmp_path, copy_of, kinetics_src):
    src = copy_of(kinetics_src)
    label = sorted(p.name for p in src.iterdir() if p.is_dir())[0]
    bad = write_bad_clips(src / label)

    result = decode("--src", src, "--out", tmp_path / "c", "--workers", 1)
    assert result.exit_code == 1, result.output
    assert "failed 5" in result.output
    errors = {e["item"]: e for e in read_errors(tmp_path / "c")}
    reasons = {kind: errors[path.stem]["reason"] for kind, path in bad.items()}
    assert "zero-byte" in reasons["zero_byte"]
    assert "no video stream" in reasons["audio_only"]
    assert all(e["status"] == "failed" for e in errors.values())
    assert all(reasons[kind] for kind in ("not_video", "truncated", "truncated_faststart"))

    cache = open_cache(tmp_path / "c")
    assert len(cache) == 8
    assert cache.classes == sorted(p.name for p in src.iterdir() if p.is_dir())
    assert verify_cache(tmp_path / "c") == []


def test_raw_frames_in_hdf5_match_jpeg_frames(tmp_path, kinetics_src):
    common = ["--src", kinetics_src, "--workers", 1, "--short-side", 128, "--fps", 10]
    assert decode(*common, "--out", tmp_path / "raw", "--codec", "raw", "--format", "hdf5").exit_code == 0
    assert decode(*common, "--out", tmp_path / "jpeg", "--quality", 2).exit_code == 0
    raw, jpeg = open_cache(tmp_path / "raw"), open_cache(tmp_path / "jpeg")
    assert raw.manifest["format"] == "hdf5" and [r["id"] for r in raw] == [r["id"] for r in jpeg]
    record, reference = raw[0], jpeg[0]
    assert record["num_frames"] == 10 and isinstance(record["frames"], bytes)
    frames = np.frombuffer(record["frames"], np.uint8).reshape(10, record["height"], record["width"], 3)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in reference["frames"]])
    assert np.abs(frames.astype(int) - decoded).mean() < 6


def test_unlisted_clips_are_skipped_and_listed(tmp_path, copy_of, kinetics_src):
    src = copy_of(kinetics_src)
    rows = csv_rows(src)
    with open(src / "short.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:5])
        f.write("zumba,,1,11,train\n")
    result = decode("--src", src, "--annotations", src / "short.csv", "--out", tmp_path / "c", "--workers", 1)
    errors = read_errors(tmp_path / "c")
    statuses = [e["status"] for e in errors]
    assert result.exit_code == 1  # the unusable CSV row failed
    assert statuses.count("skipped") == 8 - 5 and statuses.count("failed") == 1
    assert any(e["item"] == 7 and "youtube_id" in e["reason"] for e in errors)
    assert len(open_cache(tmp_path / "c")) == 5


def test_local_cluster_matches_in_process_run(tmp_path, kinetics_src):
    assert decode("--src", kinetics_src, "--out", tmp_path / "one", "--workers", 1, "--videos-per-shard", 2).exit_code == 0
    result = decode("--src", kinetics_src, "--out", tmp_path / "two", "--workers", 2, "--videos-per-shard", 2)
    assert result.exit_code == 0, result.output
    one, two = open_cache(tmp_path / "one"), open_cache(tmp_path / "two")
    assert [s["sha256"] for s in one.shards] == [s["sha256"] for s in two.shards]


@pytest.mark.parametrize("args, message", [
    (["--fps", "0"], "--fps"),
    (["--codec", "png"], "--codec"),
    (["--annotations", "/no/such.csv"], "--annotations"),
])
def test_bad_options_exit_2(tmp_path, kinetics_src, args, message):
    result = decode("--src", kinetics_src, "--out", tmp_path / "c", *args)
    assert result.exit_code == 2 and message in result.output


def test_csv_without_required_columns_is_a_usage_error(tmp_path, kinetics_src):
    (tmp_path / "bad.csv").write_text("name,start\nx,1\n")
    result = decode("--src", kinetics_src, "--annotations", tmp_path / "bad.csv", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "youtube_id" in result.output


def test_split_selects_csv_rows_and_keeps_the_class_list(tmp_path, kinetics_src):
    rows = csv_rows(kinetics_src)
    result = decode("--src", kinetics_src, "--annotations", kinetics_src / "kinetics.csv", "--split", "val",
                    "--out", tmp_path / "val", "--workers", 1)
    assert result.exit_code == 0, result.output
    cache = open_cache(tmp_path / "val")
    val = {clip_id(r) for r in rows if r["split"] == "val"}
    assert {r["id"] for r in cache} | {e["item"] for e in read_errors(tmp_path / "val")} == val
    assert cache.classes == sorted({r["label"] for r in rows})
    assert not [e for e in read_errors(tmp_path / "val") if e["status"] == "skipped"]
