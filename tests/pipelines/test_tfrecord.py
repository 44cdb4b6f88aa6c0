"""TFRecord framing against TensorFlow's reader, and damaged files."""

import pickle

import pytest
import tensorflow as tf

from videotk.pipelines.synth_youtube8m import synth_youtube8m
from videotk.pipelines.tfrecord import SourceError, TFRecordError, iter_records

HEADER, FOOTER = 12, 4


@pytest.fixture(scope="module")
def record_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfrecords")
    return synth_youtube8m(out, num_files=1, videos_per_file=6, min_frames=5, max_frames=9)[0]


def offsets(records):
    """Byte offset of each record in its file."""
    starts, position = [], 0
    for record in records:
        starts.append(position)
        position += HEADER + len(record) + FOOTER
    return starts


def damaged_copy(source, tmp_path, edit):
    """A copy of `source` whose bytes went through `edit(bytearray)`."""
    data = bytearray(source.read_bytes())
    edit(data)
    path = tmp_path / source.name
    path.write_bytes(bytes(data))
    return path


def read_until_error(path):
    """(records yielded, the TFRecordError raised after them)."""
    records = []
    with pytest.raises(TFRecordError) as info:
        for record in iter_records(path):
            records.append(record)
    return records, info.value


def flip(position):
    def edit(data):
        data[position] ^= 0x40

    return edit


def test_records_match_tensorflow(tmp_path):
    paths = synth_youtube8m(tmp_path, level="video", num_files=2, videos_per_file=5)
    paths += synth_youtube8m(tmp_path, num_files=1, videos_per_file=3, prefix="frames")
    for path in paths:
        expected = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
        assert list(iter_records(path)) == expected
        assert list(iter_records(path, verify=False)) == expected


def test_flipped_data_byte_keeps_earlier_records(record_file, tmp_path):
    good = list(iter_records(record_file))
    k = 3
    path = damaged_copy(record_file, tmp_path, flip(offsets(good)[k] + HEADER + 100))
    records, error = read_until_error(path)
    assert records == good[:k]
    assert (error.item, error.offset, error.source) == (k, offsets(good)[k], str(path))
    assert "crc" in error.reason
    assert f"{record_file.name} record {k} (offset {offsets(good)[k]}): data crc mismatch" in str(error)


def test_flipped_data_byte_passes_without_verify(record_file, tmp_path):
    good = list(iter_records(record_file))
    path = damaged_copy(record_file, tmp_path, flip(offsets(good)[1] + HEADER))
    records = list(iter_records(path, verify=False))
    assert len(records) == len(good) and records[1] != good[1] and records[2:] == good[2:]


def test_flipped_length_byte_raises(record_file, tmp_path):
    good = list(iter_records(record_file))
    path = damaged_copy(record_file, tmp_path, flip(offsets(good)[2] + 1))
    records, error = read_until_error(path)
    assert records == good[:2]
    assert error.item == 2 and "length crc" in error.reason


@pytest.mark.parametrize("into", [HEADER + 10, HEADER + 200, 5])
def test_truncated_file_keeps_earlier_records(record_file, tmp_path, into):
    good = list(iter_records(record_file))
    end = offsets(good)[4] + into

    def cut(data):
        del data[end:]

    records, error = read_until_error(damaged_copy(record_file, tmp_path, cut))
    assert records == good[:4]
    assert error.item == 4 and "truncated" in error.reason


def test_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(iter_records(path)) == []


def test_errors_survive_pickling():
    error = TFRecordError("data crc mismatch", source="a/train0001.tfrecord", item=17, offset=123456)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, SourceError)
    assert (copy.source, copy.item, copy.offset, copy.reason) == ("a/train0001.tfrecord", 17, 123456, "data crc mismatch")
    assert str(copy) == "a/train0001.tfrecord record 17 (offset 123456): data crc mismatch"
