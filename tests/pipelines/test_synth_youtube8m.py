"""Synthetic YouTube-8M data: determinism, the published schema, and labels that show in the features."""

import string

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.pipelines.synth_youtube8m import synth_youtube8m
from videotk.pipelines.tfrecord import iter_records
from videotk.formats.schema import dequantize_youtube8m as dequantize
from videotk.pipelines.youtube8m_records import parse_frame_level, parse_video_level

SMALL = dict(num_files=2, videos_per_file=4, min_frames=10, max_frames=20)


def parsed(paths, parse):
    return [parse(data) for path in paths for data in iter_records(path)]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = synth_youtube8m(tmp_path / "a", segments=True, seed=3, **SMALL)
    again = synth_youtube8m(tmp_path / "b", segments=True, seed=3, **SMALL)
    other = synth_youtube8m(tmp_path / "c", segments=True, seed=4, **SMALL)
    assert [p.name for p in first] == ["train0000.tfrecord", "train0001.tfrecord"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert all(p.read_bytes() != q.read_bytes() for p, q in zip(first, other))


def test_tensorflow_reads_the_published_frame_schema(tmp_path):
    (path,) = synth_youtube8m(tmp_path, num_files=1, videos_per_file=3, prefix="validate", segments=True)
    assert path.name == "validate0000.tfrecord"
    context_spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
        "segment_start_times": tf.io.VarLenFeature(tf.int64),
        "segment_end_times": tf.io.VarLenFeature(tf.int64),
        "segment_labels": tf.io.VarLenFeature(tf.int64),
        "segment_scores": tf.io.VarLenFeature(tf.float32),
    }
    frames_spec = {key: tf.io.FixedLenSequenceFeature([], tf.string) for key in ("rgb", "audio")}
    for data in tf.data.TFRecordDataset(str(path)):
        context, lists = tf.io.parse_single_sequence_example(data, context_spec, frames_spec)
        rgb = tf.io.decode_raw(lists["rgb"], tf.uint8)
        audio = tf.io.decode_raw(lists["audio"], tf.uint8)
        assert rgb.shape[1:] == (1024,) and audio.shape[1:] == (128,) and 30 <= rgb.shape[0] <= 120
        labels = set(context["labels"].values.numpy())
        assert 1 <= len(labels) <= 3
        starts = context["segment_start_times"].values.numpy()
        assert np.all(starts % 5 == 0) and np.all(context["segment_end_times"].values.numpy() == starts + 5)
        assert np.all(starts + 5 <= rgb.shape[0])
        assert set(context["segment_labels"].values.numpy()) <= labels
        assert set(context["segment_scores"].values.numpy()) <= {0.0, 1.0}


def test_ids_are_unique_four_alphanumerics(tmp_path):
    videos = parsed(synth_youtube8m(tmp_path, level="video", num_files=4, videos_per_file=64), parse_video_level)
    ids = [video["id"] for video in videos]
    assert len(set(ids)) == len(ids) == 256
    assert all(len(i) == 4 and set(i) <= set(string.ascii_letters + string.digits) for i in ids)


def test_video_level_means_are_the_frame_means(tmp_path):
    frames = parsed(synth_youtube8m(tmp_path / "frame", seed=5, **SMALL), parse_frame_level)
    videos = parsed(synth_youtube8m(tmp_path / "video", level="video", seed=5, **SMALL), parse_video_level)
    for frame, video in zip(frames, videos):
        assert frame["id"] == video["id"]
        rgb = np.frombuffer(frame["rgb"], np.uint8).reshape(-1, 1024)
        np.testing.assert_array_equal(video["mean_rgb"], dequantize(rgb).mean(axis=0))


def test_labels_are_recoverable_from_mean_features(tmp_path):
    paths = synth_youtube8m(tmp_path, level="video", num_files=4, videos_per_file=32, num_classes=20)
    videos = parsed(paths, parse_video_level)
    features = np.stack([np.concatenate([v["mean_rgb"], v["mean_audio"]]) for v in videos])
    targets = np.zeros((len(videos), 20))
    for row, video in enumerate(videos):
        targets[row, video["labels"]] = 1
    train, test = slice(0, 96), slice(96, None)
    prototypes, *_ = np.linalg.lstsq(targets[train], features[train], rcond=None)
    scores = features[test] @ np.linalg.pinv(prototypes)
    hits = [set(np.argsort(-s)[: int(t.sum())]) == set(np.flatnonzero(t)) for s, t in zip(scores, targets[test])]
    assert np.mean(hits) > 0.9


def test_active_classes_are_spread_over_the_label_space_and_shared_by_held_out_files(tmp_path):
    space = dict(num_classes=3862, active_classes=16, min_frames=2, max_frames=4, seed=2)
    train = parsed(synth_youtube8m(tmp_path, num_files=2, videos_per_file=40, **space), parse_frame_level)
    held_out = parsed(synth_youtube8m(tmp_path, num_files=1, videos_per_file=40, prefix="validate", **space),
                      parse_frame_level)
    classes = {label for video in train for label in video["labels"]}
    assert len(classes) == 16 and max(classes) - min(classes) > 3862 // 2
    assert {label for video in held_out for label in video["labels"]} == classes
    assert not {video["rgb"] for video in train} & {video["rgb"] for video in held_out}
    other_seed = parsed(synth_youtube8m(tmp_path / "other", num_files=1, videos_per_file=40, **{**space, "seed": 3}),
                        parse_frame_level)
    assert {label for video in other_seed for label in video["labels"]} != classes


def test_progress_counts_the_videos_written_in_the_child_process(tmp_path):
    counts = []
    synth_youtube8m(tmp_path, num_files=3, videos_per_file=5, min_frames=2, max_frames=3,
                    progress=lambda done, total: counts.append((done, total)))
    assert counts[-1] == (15, 15) and all(total == 15 for _, total in counts)
    assert [done for done, _ in counts] == sorted(done for done, _ in counts) and len(counts) > 3


def test_cli_draws_a_progress_bar_on_stderr_unless_quiet(tmp_path):
    args = ["synth", "youtube8m", "--files", "2", "--videos-per-file", "2", "--min-frames", "2", "--max-frames", "3",
            "--classes", "3862", "--active", "4"]
    loud = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "loud")])
    quiet = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "quiet"), "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "videos:" in loud.stderr and not quiet.stderr
    assert quiet.stdout == f"wrote 2 frame-level tfrecords (4 videos) to {tmp_path / 'quiet'}\n"


@pytest.mark.parametrize("args, message", [
    (["--classes", "10", "--active", "11"], "--active 11 exceeds --classes 10"),
    (["--active", "0"], "--active"),
    (["--min-frames", "9", "--max-frames", "8"], "--min-frames"),
    (["--level", "video", "--segments"], "segments exist only"),
])
def test_cli_bad_arguments_are_usage_errors(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["synth", "youtube8m", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(level="clip"), "level must be"),
        (dict(num_classes=10, active_classes=11), "active_classes"),
        (dict(level="video", segments=True), "segments exist only"),
        (dict(min_frames=3, segments=True), "min_frames"),
        (dict(min_frames=50, max_frames=40), "min_frames"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth_youtube8m(tmp_path, **kwargs)
