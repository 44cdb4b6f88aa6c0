"""Every column type round-trips through both formats, and writers refuse values that do not fit."""

import numpy as np
import pytest

from videotk.formats import Column, ColumnValueError, open_shard_reader, open_shard_writer, shard_name
from videotk.formats.codecs import CODECS, codec_for

FORMATS = ["parquet", "hdf5"]


def tensors(dtype, dims, count, seed):
    """``count`` arrays of ``dtype`` whose ``?`` dimensions vary, including size 0."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        shape = [(i * 3 + j) % 5 if d is None else d for j, d in enumerate(dims)]
        out.append((rng.standard_normal(shape) * 50).astype(dtype))
    return out


#: column type -> values of consecutive records, each list with an empty value and varying sizes
VALUES = {
    "int32": [0, -7, 2**31 - 1, np.int32(5)],
    "int64": [0, 2**40, -(2**63), np.int64(3)],
    "float32": [0.0, 1.5, -2, np.float32(0.25)],
    "float64": [1e-300, -0.0, 3, 2.5],
    "string": ["", "a", "é ☃", "x" * 300],
    "binary": [b"", b"\x00\xff", bytes(range(256)), b"z" * 1000],
    "list<int32>": [np.zeros(0, np.int32), np.arange(3, dtype=np.int32), np.array([-1], np.int32),
                    np.arange(40, dtype=np.int32)],
    "list<float32>": [np.zeros(0, np.float32), np.linspace(0, 1, 5, dtype=np.float32), np.ones(1, np.float32),
                      np.arange(9, dtype=np.float32)],
    "list<binary>": [[], [b""], [b"ab", b"cde"], [bytes([i]) * i for i in range(7)]],
    "list<string>": [[], [""], ["a man plays a guitar", "the crowd cheers"], ["é"] * 5],
    "segments": [np.zeros((0, 2), np.float32), np.array([[0.5, 2.0]], np.float32),
                 np.array([[0, 1], [1.25, 7.5], [3, 3]], np.float32), np.zeros((0, 2), np.float32)],
    "tensor<float32>[?,16]": tensors(np.float32, (None, 16), 6, 1),
    "tensor<float16>[?,8]": tensors(np.float16, (None, 8), 6, 2),
    "tensor<float64>[?]": tensors(np.float64, (None,), 6, 3),
    "tensor<uint8>[?,?,3]": tensors(np.uint8, (None, None, 3), 6, 4),
    "tensor<int32>[2,?]": tensors(np.int32, (2, None), 6, 5),
    "tensor<int64>[?,?]": tensors(np.int64, (None, None), 6, 6),
}


SCALARS = {"int32": int, "int64": int, "float32": float, "float64": float, "string": str, "binary": bytes}


def assert_value(got, want, type_=None):
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, list):
        assert list(got) == want
    else:
        assert got == want and type(got) is SCALARS[type_]


def write_shard(path, columns, records):
    with open_shard_writer(path, "test", columns) as writer:
        for record in records:
            writer.write(record)
        writer.finalize()
    return open_shard_reader(path)


def test_every_type_of_the_table_is_tested():
    tested = {codec_for(name).name.partition("[")[0] for name in VALUES}
    assert tested == set(CODECS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("type_", sorted(VALUES))
def test_round_trip(tmp_path, fmt, type_):
    values = VALUES[type_]
    columns = (Column("value", type_), Column("id", "int32"))  # the typed column first: it gives the row count
    records = [{"value": v, "id": i} for i, v in enumerate(values * 30)]  # several HDF5 blocks
    reader = write_shard(tmp_path / shard_name(0, "abc", fmt), columns, records)
    assert len(reader) == len(records)
    for index in (0, 1, 2, 3, len(records) - 1, 70):
        assert_value(reader.read(index)["value"], records[index]["value"], type_)
    for got, want in zip(reader, records, strict=True):
        assert_value(got["value"], want["value"], type_)
    for got, want in zip(reader.read_column("value"), records, strict=True):
        assert_value(got, want["value"], type_)


@pytest.mark.parametrize("fmt", FORMATS)
def test_shards_of_only_empty_values(tmp_path, fmt):
    columns = (Column("features", "tensor<float32>[?,4]"), Column("captions", "list<string>"), Column("gt", "segments"))
    record = {"features": np.zeros((0, 4), np.float32), "captions": [], "gt": []}
    reader = write_shard(tmp_path / shard_name(0, "abc", fmt), columns, [record, record])
    assert len(reader) == 2
    got = reader.read(1)
    assert got["features"].shape == (0, 4) and got["captions"] == [] and got["gt"].shape == (0, 2)


def test_parquet_tensors_are_read_only_views_of_one_buffer(tmp_path):
    columns = (Column("features", "tensor<float32>[?,16]"),)
    values = VALUES["tensor<float32>[?,16]"]
    reader = write_shard(tmp_path / shard_name(0, "abc", "parquet"), columns, [{"features": v} for v in values])
    first, second = reader.read(1)["features"], reader.read(2)["features"]
    assert not first.flags.writeable and not first.flags.owndata
    assert first.base is not None and np.shares_memory(first.base, second.base)
    with pytest.raises(ValueError):
        first[0, 0] = 1


def test_segments_accept_lists_of_pairs(tmp_path):
    columns = (Column("gt", "segments"),)
    reader = write_shard(tmp_path / shard_name(0, "abc", "hdf5"), columns, [{"gt": [[0, 1.5], [2, 4]]}, {"gt": []}])
    assert_value(reader.read(0)["gt"], np.array([[0, 1.5], [2, 4]], np.float32))
    assert reader.read(1)["gt"].shape == (0, 2)


@pytest.mark.parametrize("type_, value, expected", [
    ("tensor<float32>[?,16]", np.zeros((3, 16), np.float64), "float32 ndarray of shape [?, 16], got a float64"),
    ("tensor<float32>[?,16]", np.zeros((3, 15), np.float32), "got a float32 ndarray of shape [3, 15]"),
    ("tensor<float32>[?,16]", np.zeros(16, np.float32), "shape [?, 16], got a float32 ndarray of shape [16]"),
    ("tensor<float16>[?,8]", [[0.0] * 8], "float16 ndarray"),
    ("segments", np.zeros((2, 3)), "[K, 2] (start, end) pairs"),
    ("segments", [["a", "b"]], "[K, 2]"),
    ("int32", 2**31, "one int32 number"),
    ("int32", 1.5, "one int32 number"),
    ("int64", True, "one int64 number"),
    ("float64", "1.0", "one float64 number"),
    ("string", b"bytes", "a str"),
    ("binary", "text", "bytes"),
    ("list<int32>", np.zeros((2, 2), np.int32), "1-D sequence of int32"),
    ("list<int32>", [1.5], "1-D sequence of int32"),
    ("list<int32>", np.array([2**40]), "1-D sequence of int32"),
    ("list<string>", "one string", "a list of string values"),
    ("list<string>", ["a", 1], "a list of string values"),
    ("list<binary>", [b"a", "b"], "a list of binary values"),
])
@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_values_are_refused_naming_the_column(tmp_path, fmt, type_, value, expected):
    columns = (Column("id", "string"), Column("value", type_))
    good = VALUES[type_][1]
    path = tmp_path / shard_name(0, "abc", fmt)
    with open_shard_writer(path, "test", columns) as writer:
        writer.write({"id": "a", "value": good})
        with pytest.raises(ColumnValueError, match=r"column 'value' \(.*\): expected .*") as info:
            writer.write({"id": "b", "value": value})
        assert expected in str(info.value)
        writer.write({"id": "c", "value": good})
        writer.finalize()
    assert [r["id"] for r in open_shard_reader(path)] == ["a", "c"]  # the refused record left no trace


@pytest.mark.parametrize("type_, message", [
    ("tensor<float32>", "needs its dimensions"),
    ("tensor<float32>[]", "dimensions must be"),
    ("tensor<float32>[?,x]", "dimensions must be"),
    ("tensor<complex64>[?]", "unknown column type"),
    ("int32[3]", "takes no shape"),
    ("list<int64>", "unknown column type"),
])
def test_bad_type_names_are_refused(type_, message):
    with pytest.raises(ValueError, match=message):
        Column("x", type_)


def test_type_names_are_canonical_and_names_checked():
    assert Column("x", "tensor<float32>[ ?, 1024 ]").type == "tensor<float32>[?,1024]"
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        Column("frames.row_splits", "int32")
