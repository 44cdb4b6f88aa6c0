"""TensorFlow's own reading of YouTube-8M tfrecords, in the cache's column contract (the reference)."""

import numpy as np

SEGMENT_INTS = ("segment_start_times", "segment_end_times", "segment_labels")


def tensorflow_records(path, level: str, segments: bool = False) -> list[dict]:
    import tensorflow as tf

    records = []
    for data in tf.data.TFRecordDataset(str(path)):
        records.append(_frame(tf, data, segments) if level == "frame" else _video(tf, data))
    return records


def _frame(tf, data, segments: bool) -> dict:
    context_spec = {"id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)}
    context_spec.update({k: tf.io.VarLenFeature(tf.int64) for k in SEGMENT_INTS})
    context_spec["segment_scores"] = tf.io.VarLenFeature(tf.float32)
    lists_spec = {k: tf.io.FixedLenSequenceFeature([], tf.string) for k in ("rgb", "audio")}
    context, lists = tf.io.parse_single_sequence_example(data, context_features=context_spec, sequence_features=lists_spec)
    record = {
        "id": context["id"].numpy().decode(),
        "labels": context["labels"].values.numpy().astype(np.int32),
        "num_frames": int(lists["rgb"].shape[0]),
        "rgb": b"".join(lists["rgb"].numpy().tolist()),
        "audio": b"".join(lists["audio"].numpy().tolist()),
    }
    if segments:
        for key in SEGMENT_INTS:
            record[key] = context[key].values.numpy().astype(np.int32)
        record["segment_scores"] = context["segment_scores"].values.numpy().astype(np.float32)
    return record


def _video(tf, data) -> dict:
    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
        "mean_rgb": tf.io.FixedLenFeature([1024], tf.float32),
        "mean_audio": tf.io.FixedLenFeature([128], tf.float32),
    }
    parsed = tf.io.parse_single_example(data, spec)
    return {
        "id": parsed["id"].numpy().decode(),
        "labels": parsed["labels"].values.numpy().astype(np.int32),
        "mean_rgb": parsed["mean_rgb"].numpy(),
        "mean_audio": parsed["mean_audio"].numpy(),
    }


def assert_records_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[key], value, err_msg=f"{want['id']}: {key}")
        else:
            assert got[key] == value, f"{want.get('id')}: {key}"
