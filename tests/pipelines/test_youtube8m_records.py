"""YouTube-8M record parsing, field by field against TensorFlow's own parse."""

import numpy as np
import pytest
import tensorflow as tf

from videotk.pipelines import youtube8m_records
from videotk.pipelines.synth_youtube8m import synth_youtube8m
from videotk.pipelines.tfrecord import SourceError, iter_records
from videotk.pipelines.youtube8m_records import (
    SEGMENT_KEYS,
    RecordError,
    detect_level,
    parse_frame_level,
    parse_record,
    parse_video_level,
)

CONTEXT = {"id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)}
SEGMENTS = {key: tf.io.VarLenFeature(tf.float32 if key == "segment_scores" else tf.int64) for key in SEGMENT_KEYS}
FRAMES = {key: tf.io.FixedLenSequenceFeature([], tf.string) for key in ("rgb", "audio")}
VIDEO = {"mean_rgb": tf.io.FixedLenFeature([1024], tf.float32), "mean_audio": tf.io.FixedLenFeature([128], tf.float32)}


def records(tmp_path_factory, **kwargs):
    out = tmp_path_factory.mktemp("yt8m")
    paths = synth_youtube8m(out, num_files=2, videos_per_file=4, min_frames=20, max_frames=40, **kwargs)
    return [record for path in paths for record in iter_records(path)]


@pytest.fixture(scope="module")
def frame_records(tmp_path_factory):
    return records(tmp_path_factory)


@pytest.fixture(scope="module")
def segment_records(tmp_path_factory):
    return records(tmp_path_factory, segments=True)


@pytest.fixture(scope="module")
def video_records(tmp_path_factory):
    return records(tmp_path_factory, level="video")


def bytes_feature(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def int64_feature(*values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def sequence_example(context, rgb, audio):
    """A serialized SequenceExample with `context` features and rgb/audio frames (lists of bytes)."""
    lists = {key: tf.train.FeatureList(feature=[bytes_feature(f) for f in frames]) for key, frames in (("rgb", rgb), ("audio", audio))}
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context), feature_lists=tf.train.FeatureLists(feature_list=lists)
    )
    return example.SerializeToString()


def frames_of(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_frame_level_matches_tensorflow(data, context_spec=CONTEXT, id_key="id"):
    context, lists = tf.io.parse_single_sequence_example(data, context_features=context_spec, sequence_features=FRAMES)
    ours = parse_frame_level(data)
    assert ours["id"] == context[id_key].numpy().decode()
    np.testing.assert_array_equal(ours["labels"], context["labels"].values.numpy())
    assert ours["labels"].dtype == np.int32
    assert ours["num_frames"] == len(lists["rgb"]) == len(lists["audio"])
    assert frames_of(ours["rgb"], 1024) == lists["rgb"].numpy().tolist()
    assert frames_of(ours["audio"], 128) == lists["audio"].numpy().tolist()
    for key in SEGMENT_KEYS:
        if key in context_spec:
            expected = context[key].values.numpy()
            np.testing.assert_array_equal(ours[key], expected)
            assert ours[key].dtype == (np.float32 if key == "segment_scores" else np.int32)
        else:
            assert key not in ours
    return ours


def test_frame_level_matches_tensorflow(frame_records):
    for data in frame_records:
        assert set(assert_frame_level_matches_tensorflow(data)) == {"id", "labels", "num_frames", "rgb", "audio"}


def test_segment_data_matches_tensorflow(segment_records):
    for data in segment_records:
        assert_frame_level_matches_tensorflow(data, {**CONTEXT, **SEGMENTS})


def test_video_level_matches_tensorflow(video_records):
    for data in video_records:
        expected = tf.io.parse_single_example(data, {**CONTEXT, **VIDEO})
        ours = parse_video_level(data)
        assert set(ours) == {"id", "labels", "mean_rgb", "mean_audio"}
        assert ours["id"] == expected["id"].numpy().decode()
        np.testing.assert_array_equal(ours["labels"], expected["labels"].values.numpy())
        for key in VIDEO:
            assert ours[key].dtype == np.float32
            np.testing.assert_array_equal(ours[key], expected[key].numpy())


def test_2017_video_id_key():
    context = {"video_id": bytes_feature(b"-09K4OPZSSo"), "labels": int64_feature(4, 4715)}
    data = sequence_example(context, [bytes(range(256)) * 4] * 3, [bytes(128)] * 3)
    spec = {"video_id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)}
    ours = assert_frame_level_matches_tensorflow(data, spec, id_key="video_id")
    assert ours["id"] == "-09K4OPZSSo"


def test_more_than_300_frames_are_kept(tmp_path):
    path = synth_youtube8m(tmp_path, num_files=1, videos_per_file=1, min_frames=310, max_frames=310)[0]
    (data,) = iter_records(path)
    assert assert_frame_level_matches_tensorflow(data)["num_frames"] == 310


def test_unusual_layout_takes_full_parse_and_matches_tensorflow(frame_records):
    context = tf.train.SequenceExample(context=tf.train.Features(feature={"labels": int64_feature(7)}))
    data = frame_records[0] + context.SerializeToString()
    assert youtube8m_records._canonical_frame_level(data) is None
    ours = assert_frame_level_matches_tensorflow(data)
    assert ours["labels"].tolist() == [7]


def test_record_levels(frame_records, video_records):
    assert {detect_level(data) for data in frame_records} == {"frame"}
    assert {detect_level(data) for data in video_records} == {"video"}
    assert parse_record(frame_records[0], "frame")["num_frames"] >= 20
    assert parse_record(video_records[0], "video")["mean_rgb"].shape == (1024,)
    with pytest.raises(RecordError, match="neither frame-level"):
        detect_level(tf.train.Example().SerializeToString())
    with pytest.raises(ValueError, match="level"):
        parse_record(frame_records[0], "clip")


def test_level_mismatch_says_which_level(frame_records, video_records):
    with pytest.raises(RecordError, match="video-level record .*use --level video"):
        parse_frame_level(video_records[0])
    with pytest.raises(RecordError, match="frame-level record .*use --level frame"):
        parse_video_level(frame_records[0])


def test_short_frame_is_named():
    context = {"id": bytes_feature(b"ab12"), "labels": int64_feature(1)}
    rgb = [bytes(1024), bytes(1024), bytes(1023)]
    with pytest.raises(RecordError, match="'rgb' frame 2 has 1023 bytes; expected 1024"):
        parse_frame_level(sequence_example(context, rgb, [bytes(128)] * 3))


@pytest.mark.parametrize(
    "context, rgb_frames, audio_frames, message",
    [
        ({"id": bytes_feature(b"ab12")}, 3, 2, "rgb has 3 frames but audio has 2"),
        ({"labels": int64_feature(1)}, 2, 2, "'id' .* missing"),
        ({"id": bytes_feature(b"ab12"), "labels": int64_feature(2**31)}, 2, 2, "outside the int32 range"),
        ({"id": bytes_feature(b"ab12"), "labels": bytes_feature(b"1")}, 2, 2, "'labels' is a bytes_list"),
    ],
)
def test_bad_frame_level_records(context, rgb_frames, audio_frames, message):
    data = sequence_example(context, [bytes(1024)] * rgb_frames, [bytes(128)] * audio_frames)
    with pytest.raises(RecordError, match=message):
        parse_frame_level(data)


def test_missing_feature_list_and_garbage():
    example = tf.train.SequenceExample(context=tf.train.Features(feature={"id": bytes_feature(b"ab12")}))
    example.feature_lists.feature_list["rgb"].feature.add().bytes_list.value.append(bytes(1024))
    with pytest.raises(RecordError, match="missing feature_list 'audio'"):
        parse_frame_level(example.SerializeToString())
    with pytest.raises(RecordError, match="not a tf.train.Example/SequenceExample") as info:
        parse_frame_level(b"\x0a\xff\xff\x01garbage")
    assert isinstance(info.value, SourceError) and info.value.item is None


def test_wrong_mean_length_is_reported():
    features = {"id": bytes_feature(b"ab12"), "mean_rgb": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * 1000))}
    data = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
    with pytest.raises(RecordError, match="'mean_rgb' has 1000 floats; expected 1024"):
        parse_video_level(data)


def test_segment_fields_of_different_lengths_are_reported():
    context = {"id": bytes_feature(b"ab12"), "segment_start_times": int64_feature(0, 5), "segment_labels": int64_feature(3)}
    with pytest.raises(RecordError, match="segment fields differ in length"):
        parse_frame_level(sequence_example(context, [bytes(1024)] * 10, [bytes(128)] * 10))
