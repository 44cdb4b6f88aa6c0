"""YouTube-8M record parsing: the candidate parse paths, timed per record on the same records.

    python benchmarks/parse_paths.py

(a) TensorFlow's parse, eager and in a tf.function; (b) protobuf (upb) messages built at run time;
(c) a wire-format parser, with a per-frame Python loop and with numpy slicing (the one videotk uses
for frame-level records). Results are in docs/parse_paths.md.
"""

import tempfile, timeit
import tensorflow as tf
from videotk.pipelines import youtube8m_records as y
from videotk.pipelines.synth_youtube8m import synth_youtube8m
from videotk.pipelines.tfrecord import iter_records

with tempfile.TemporaryDirectory() as out:
    frame = list(iter_records(synth_youtube8m(out, num_files=1, videos_per_file=100, min_frames=200, max_frames=300)[0]))
    video = list(iter_records(synth_youtube8m(out, num_files=1, videos_per_file=100, level="video", prefix="v")[0]))
context = {"id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)}
frames = {key: tf.io.FixedLenSequenceFeature([], tf.string) for key in ("rgb", "audio")}
means = {"mean_rgb": tf.io.FixedLenFeature([1024], tf.float32), "mean_audio": tf.io.FixedLenFeature([128], tf.float32)}


def tf_frame(data):
    c, s = tf.io.parse_single_sequence_example(data, context_features=context, sequence_features=frames)
    return c["id"].numpy(), c["labels"].values.numpy(), b"".join(s["rgb"].numpy()), b"".join(s["audio"].numpy())


@tf.function(autograph=False)
def tf_graph(data):
    c, s = tf.io.parse_single_sequence_example(data, context_features=context, sequence_features=frames)
    return c["id"], c["labels"].values, tf.strings.reduce_join(s["rgb"]), tf.strings.reduce_join(s["audio"])


def upb_frame(data):
    c, lists = y._decode(data)
    return y._video_id(c), y._int32s(c, "labels"), y._checked_frames(c, lists, "rgb"), y._checked_frames(c, lists, "audio")


def frames_loop(payload, size):
    out, position = [], 0
    while position < len(payload):
        _, position = y._varint(payload, position)
        length, position = y._varint(payload, position)
        end = position + length
        for _ in range(2):
            _, position = y._varint(payload, position)
            length, position = y._varint(payload, position)
        assert length == size
        out.append(payload[position:end])
        position = end
    return b"".join(out)


def loop_frame(data):
    c, lists = y._only_fields(y._length_fields(memoryview(data)))
    lists = y._feature_list_payloads(lists)
    c = y._decode_context(bytes(c))
    return y._video_id(c), y._int32s(c, "labels"), frames_loop(lists["rgb"], 1024), frames_loop(lists["audio"], 128)


def tf_video(data):
    v = tf.io.parse_single_example(data, {**context, **means})
    return v["id"].numpy(), v["labels"].values.numpy(), v["mean_rgb"].numpy(), v["mean_audio"].numpy()


def per_record(parse, records):
    def run():
        for data in records:
            parse(data)
    return min(timeit.repeat(run, number=1, repeat=7)) / len(records) * 1e6


print(f"frame-level, {sum(map(len, frame)) / len(frame) / 1e3:.0f} kB/record")
print(f"(a) tf.io.parse_single_sequence_example, eager: {per_record(tf_frame, frame):.0f} us")
print(f"(a) same in a tf.function: {per_record(lambda d: [t.numpy() for t in tf_graph(d)], frame):.0f} us")
print(f"(b) upb messages, full parse: {per_record(upb_frame, frame):.0f} us")
print(f"(c) wire parse, per-frame Python loop: {per_record(loop_frame, frame):.0f} us")
print(f"(c) parse_frame_level (wire fast path): {per_record(y.parse_frame_level, frame):.0f} us")
print(f"video-level, {sum(map(len, video)) / len(video) / 1e3:.1f} kB/record")
print(f"(a) tf.io.parse_single_example, eager: {per_record(tf_video, video):.0f} us")
print(f"(b) parse_video_level (upb): {per_record(y.parse_video_level, video):.0f} us")
