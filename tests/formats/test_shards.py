import json
import pickle
import re

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from videotk.formats import (
    BinaryList,
    CacheError,
    check_shards,
    kinetics_columns,
    open_cache,
    open_shard_reader,
    open_shard_writer,
    read_errors,
    shard_name,
    verify_cache,
    youtube8m_columns,
)
from videotk.formats.manifest import write_manifest
from videotk.formats.schema import columns_to_json

FORMATS = ["parquet", "hdf5"]


def frame_record(i: int, segments: bool = False) -> dict:
    rng = np.random.default_rng(i)
    frames = int(rng.integers(1, 40))
    record = {
        "id": f"v{i:03d}",
        "labels": rng.integers(0, 3862, size=i % 4).astype(np.int32),
        "num_frames": frames,
        "rgb": rng.integers(0, 256, frames * 1024, dtype=np.uint8).tobytes(),
        "audio": rng.integers(0, 256, frames * 128, dtype=np.uint8).tobytes(),
    }
    if segments:
        count = i % 3  # 0, 1 and 2 segments: empty and one-item lists must survive too
        record.update(
            segment_start_times=np.arange(count, dtype=np.int32) * 5,
            segment_end_times=np.arange(count, dtype=np.int32) * 5 + 5,
            segment_labels=np.full(count, 7, dtype=np.int32),
            segment_scores=np.linspace(0, 1, count, dtype=np.float32),
        )
    return record


def video_record(i: int) -> dict:
    rng = np.random.default_rng(i)
    return {
        "id": f"v{i:03d}",
        "labels": np.array([i % 5], dtype=np.int32),
        "mean_rgb": rng.standard_normal(1024).astype(np.float32),
        "mean_audio": rng.standard_normal(128).astype(np.float32),
    }


def clip_record(i: int, codec: str) -> dict:
    frames = [bytes([i % 256, j % 256]) * (j + 1) for j in range(i % 5)]
    return {
        "id": f"yt{i:09d}_000010_000020",
        "label": i % 3,
        "label_name": ["air drumming", "abseiling", "zumba"][i % 3],
        "fps": 25.0,
        "num_frames": len(frames),
        "height": 256,
        "width": 340,
        "frames": frames if codec == "jpeg" else b"".join(frames),
    }


CASES = {
    "youtube8m-frame": (youtube8m_columns("frame"), frame_record),
    "youtube8m-frame-2019": (youtube8m_columns("frame", segments=True), lambda i: frame_record(i, segments=True)),
    "youtube8m-video": (youtube8m_columns("video"), video_record),
    "kinetics-jpeg": (kinetics_columns("jpeg"), lambda i: clip_record(i, "jpeg")),
    "kinetics-raw": (kinetics_columns("raw"), lambda i: clip_record(i, "raw")),
}


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        elif isinstance(value, list):  # list<binary>: a list, or a BinaryList view from Parquet
            assert isinstance(got[key], (list, BinaryList)), key
            assert list(got[key]) == value and got[key] == value, key
        else:
            assert type(got[key]) is type(value), key
            assert got[key] == value, key


def write_cache(root, fmt, kind, columns, shards: list[list[dict]]):
    (root / "shards").mkdir(parents=True, exist_ok=True)
    infos = []
    for index, records in enumerate(shards):
        with open_shard_writer(root / "shards" / shard_name(index, f"k{index}", fmt), kind, columns) as writer:
            for record in records:
                writer.write(record)
            infos.append({**writer.finalize().__dict__, "sources": [f"src{index}"]})
    write_manifest(root, {"kind": kind, "format": fmt, "columns": columns_to_json(columns), "shards": infos})
    return root


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_iteration_random_access_and_columns(tmp_path, fmt, case):
    columns, make = CASES[case]
    shards = [[make(i) for i in range(0, 90)], [make(i) for i in range(90, 100)]]
    cache = open_cache(write_cache(tmp_path, fmt, case, columns, shards))
    records = shards[0] + shards[1]

    assert len(cache) == 100
    for got, want in zip(cache, records, strict=True):
        assert_same(got, want)
    for index in (0, 89, 90, 99, 37, -1):
        assert_same(cache[index], records[index])
    assert cache.column("id") == [r["id"] for r in records]
    with pytest.raises(IndexError):
        cache[100]


@pytest.mark.parametrize("fmt", FORMATS)
def test_schema_travels_inside_each_shard(tmp_path, fmt):
    columns = youtube8m_columns("frame")
    path = tmp_path / shard_name(0, "abc", fmt)
    with open_shard_writer(path, "youtube8m-frame", columns) as writer:
        writer.write(frame_record(1))
        writer.finalize()
    if fmt == "parquet":
        text = pq.ParquetFile(path).schema_arrow.metadata[b"videotk.schema"]
    else:
        with h5py.File(path, "r") as f:
            text = f.attrs["videotk.schema"]
    schema = json.loads(text)
    assert schema["kind"] == "youtube8m-frame"
    assert [c["name"] for c in schema["columns"]] == ["id", "labels", "num_frames", "rgb", "audio"]
    reader = open_shard_reader(path)
    assert reader.kind == "youtube8m-frame" and len(reader) == 1


def test_parquet_row_groups_stay_small(tmp_path):
    path = tmp_path / shard_name(0, "abc", "parquet")
    with open_shard_writer(path, "youtube8m-frame", youtube8m_columns("frame")) as writer:
        for i in range(400):
            writer.write(frame_record(i))
        writer.finalize()
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 1
    sizes = [meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)]
    assert max(sizes) < 8 << 20, "one video must not require reading more than a few MiB"


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_leaves_no_file(tmp_path, fmt):
    path = tmp_path / shard_name(0, "abc", fmt)
    with pytest.raises(RuntimeError):
        with open_shard_writer(path, "youtube8m-frame", youtube8m_columns("frame")) as writer:
            writer.write(frame_record(1))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_record_with_wrong_keys_is_refused(tmp_path):
    path = tmp_path / shard_name(0, "abc", "parquet")
    with open_shard_writer(path, "youtube8m-frame", youtube8m_columns("frame")) as writer:
        with pytest.raises(ValueError, match=r"missing \['audio'\]"):
            writer.write({k: v for k, v in frame_record(1).items() if k != "audio"})
        with pytest.raises(ValueError, match=r"unexpected \['segment_labels'\]"):
            writer.write({**frame_record(1), "segment_labels": np.zeros(1, np.int32)})
        writer.abort()


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_names_the_damaged_shard(tmp_path, fmt):
    columns, make = CASES["youtube8m-frame"]
    write_cache(tmp_path, fmt, "youtube8m-frame", columns, [[make(i) for i in range(5)], [make(9)]])
    assert verify_cache(tmp_path) == []

    second = sorted((tmp_path / "shards").iterdir())[1]
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0xFF
    second.write_bytes(bytes(data))
    problems = verify_cache(tmp_path)
    assert [p.file for p in problems] == [second.name]
    assert "sha256" in problems[0].reason

    second.unlink()
    assert verify_cache(tmp_path)[0].reason == "missing"


def test_open_cache_without_manifest_explains(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(CacheError, match="run the same command again to resume"):
        open_cache(tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cache_keeps_a_bounded_number_of_shards_open(tmp_path, fmt):
    from videotk.formats.cache import OPEN_READERS

    columns, make = CASES["youtube8m-video"]
    shards = [[make(i)] for i in range(OPEN_READERS + 3)]
    cache = open_cache(write_cache(tmp_path, fmt, "youtube8m-video", columns, shards))
    assert [r["id"] for r in cache] == [s[0]["id"] for s in shards]
    assert len(cache._readers) == OPEN_READERS
    assert cache[0]["id"] == shards[0][0]["id"]  # a closed reader opens again


def test_parquet_hands_out_frames_as_views_of_one_buffer(tmp_path):
    columns = kinetics_columns("jpeg")
    records = [clip_record(i, "jpeg") for i in range(4, 8)]  # 4, 0, 1 and 2 frames
    cache = open_cache(write_cache(tmp_path / "pq", "parquet", "kinetics", columns, [records]))
    frames = [cache[i]["frames"] for i in range(4)]
    assert all(isinstance(f, BinaryList) for f in frames)
    assert [len(f) for f in frames] == [4, 0, 1, 2]
    first = frames[0]
    assert first[1] == records[0]["frames"][1] and first[-1] == records[0]["frames"][-1]
    assert isinstance(first[1], bytes) and first.nbytes == sum(map(len, records[0]["frames"]))
    assert first[1:3] == records[0]["frames"][1:3] and isinstance(first[1:3], BinaryList)
    assert first[::2] == records[0]["frames"][::2] and first[3:1] == []
    np.testing.assert_array_equal(first.view(2), np.frombuffer(records[0]["frames"][2], np.uint8))
    assert not first.view(0).flags.writeable
    with pytest.raises(IndexError, match="item 4 out of range for 4 items"):
        first[4]
    assert first != records[1]["frames"] and repr(first) == f"BinaryList(4 items, {first.nbytes} bytes)"
    again = pickle.loads(pickle.dumps(first))
    assert type(again) is list and again == records[0]["frames"]

    # a record read from Parquet can be written to another cache as it is
    copy = open_cache(write_cache(tmp_path / "h5", "hdf5", "kinetics", columns, [list(cache)]))
    for got, want in zip(copy, records, strict=True):
        assert_same(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_shards_stats_by_default_and_reads_when_deep(tmp_path, fmt):
    columns, make = CASES["youtube8m-frame"]
    write_cache(tmp_path, fmt, "youtube8m-frame", columns, [[make(i) for i in range(5)], [make(9)], [make(7)]])
    cache = open_cache(tmp_path)
    assert check_shards(cache) == [] and check_shards(tmp_path, deep=True) == []

    first, second, third = sorted((tmp_path / "shards").iterdir())
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))  # same size: only a deep check sees it
    second.unlink()
    third.write_bytes(third.read_bytes() + b"\0")
    assert [str(p) for p in check_shards(cache)] == [f"{second.name}: missing",
                                                     f"{third.name}: size {third.stat().st_size} bytes, "
                                                     f"manifest says {third.stat().st_size - 1}"]
    deep = check_shards(cache, deep=True)
    assert [p.file for p in deep] == [first.name, second.name, third.name] and "sha256" in deep[0].reason


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot be read as JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"schema_version": 1, "kind": "kinetics", "format": "parquet", "columns": []}', "no key 'shards'"),
    ('{"schema_version": 1, "kind": "kinetics", "format": "parquet", "columns": [], "shards": {}}', "shards is dict, not list"),
    ('{"schema_version": 1, "kind": "kinetics", "format": "parquet", "columns": [{"name": "x", "type": "int8"}],'
     ' "shards": []}', "bad columns"),
    ('{"schema_version": 1, "kind": "kinetics", "format": "parquet", "columns": [],'
     ' "shards": [{"file": "a.parquet", "rows": 1, "bytes": 2}]}', "no key 'shards[0].sha256'"),
    ('{"schema_version": 1, "kind": "kinetics", "format": "parquet", "columns": [],'
     ' "shards": [{"file": "../../etc/passwd", "rows": 1, "bytes": 2, "sha256": ""}]}', "not a file name inside shards/"),
    ('{"schema_version": 2}', "schema version 2"),
])
def test_open_cache_names_a_damaged_manifest(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(CacheError, match=re.escape(message)) as info:
        open_cache(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "manifest.json"))


def test_read_errors_names_a_damaged_line(tmp_path):
    (tmp_path / "errors.jsonl").write_text('{"source": "a", "item": null, "reason": "x", "status": "failed"}\n{oops\n')
    with pytest.raises(CacheError, match="errors.jsonl: line 2 is not valid JSON"):
        read_errors(tmp_path)
