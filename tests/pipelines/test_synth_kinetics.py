"""Synthetic Kinetics: layout, CSV, determinism and motion, decoded with real ffmpeg."""
import csv
import re

import numpy as np
import pytest

from videotk.pipelines.ffmpeg import decode_clip
from videotk.pipelines.synth_kinetics import (
    CSV_COLUMNS,
    clip_name,
    motion_classes,
    render_clip,
    synth_kinetics,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    csv_path = synth_kinetics(root, num_classes=4, clips_per_class=6, missing=3, seed=3)
    with open(csv_path, newline="") as f:
        return root, csv_path, list(csv.DictReader(f))


def _clip_path(root, row):
    return root / row["label"] / clip_name(row["youtube_id"], int(row["time_start"]), int(row["time_end"]))


def test_csv_columns_ids_and_times(dataset):
    root, csv_path, rows = dataset
    assert csv_path == root / "kinetics.csv"
    assert csv_path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert len(rows) == 4 * 6 + 3
    assert len({row["youtube_id"] for row in rows}) == len(rows)
    for row in rows:
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}", row["youtube_id"])
        assert int(row["time_end"]) == int(row["time_start"]) + 10
        assert " moving " in row["label"]


def test_layout_and_missing_rows(dataset):
    root, _, rows = dataset
    listed = {_clip_path(root, row) for row in rows}
    written = set(root.glob("*/*.mp4"))
    assert written <= listed and len(written) == 24
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}_\d{6}\.mp4", path.name) for path in written)
    assert len(listed - written) == 3
    assert {path.parent.name for path in written} == {motion.label for motion in motion_classes(4)}


def test_split_is_about_three_to_one_in_every_class(dataset):
    _, _, rows = dataset
    for label in {row["label"] for row in rows}:
        splits = [row["split"] for row in rows[:24] if row["label"] == label]
        assert splits.count("val") == 2 and splits.count("train") == 4


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    options = {"num_classes": 2, "clips_per_class": 2, "duration": 0.4, "width": 64, "height": 48}
    contents = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        root = tmp_path / name
        synth_kinetics(root, seed=seed, **options)
        contents[name] = sorted(
            (str(path.relative_to(root)), path.read_bytes()) for path in root.rglob("*") if path.is_file()
        )
    assert contents["a"] == contents["b"]
    assert [data for _, data in contents["a"]] != [data for _, data in contents["c"]]


def test_every_class_has_its_own_appearance_by_default():
    classes = motion_classes(32)
    assert len({(motion.colour, motion.shape) for motion in classes}) == 32
    assert all(a.colour != b.colour for a, b in zip(classes, classes[1:]))
    assert {(motion.axis, motion.sign) for motion in classes[:4]} == {(0, -1), (0, 1), (1, -1), (1, 1)}
    assert [motion.label for motion in motion_classes(3)] == [
        "red square moving left", "green disc moving right", "blue triangle moving up",
    ]
    with pytest.raises(ValueError, match=r"in \[1, 32\], got 33"):
        motion_classes(33)


def test_motion_pairs_share_appearance_and_move_oppositely():
    classes = motion_classes(6, motion_pairs=True)
    for first, second in zip(classes[::2], classes[1::2]):
        assert (first.colour, first.shape, first.axis) == (second.colour, second.shape, second.axis)
        assert first.sign == -second.sign
    assert len({(motion.colour, motion.shape) for motion in classes}) == 3
    with pytest.raises(ValueError, match="even"):
        motion_classes(3, motion_pairs=True)


def _object_colour(frames):
    """Mean RGB of the strongly coloured (object) pixels of a clip ``[T, H, W, 3]``."""
    chroma = frames.max(axis=3).astype(int) - frames.min(axis=3)
    return frames[chroma > 80].mean(axis=0)


def test_one_averaged_frame_tells_the_class_by_default():
    """Nearest-centroid on clip-averaged object colour: what a frame-averaging model can learn."""
    options = {"num_frames": 4, "fps": 25, "width": 64, "height": 48}
    classes = motion_classes(4)
    features = np.array([[_object_colour(render_clip(motion, np.random.default_rng([c, i]), **options))
                          for i in range(4)] for c, motion in enumerate(classes)])
    centroids = features.mean(axis=1)
    nearest = np.linalg.norm(features[:, :, None] - centroids[None, None], axis=-1).argmin(axis=-1)
    assert (nearest == np.arange(4)[:, None]).all()


def test_motion_pairs_in_the_dataset(tmp_path):
    synth_kinetics(tmp_path, num_classes=2, clips_per_class=1, duration=0.2, width=32, height=24, motion_pairs=True)
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == [
        "red square moving left", "red square moving right",
    ]


def test_paired_classes_share_appearance_and_differ_in_motion():
    left, right = motion_classes(2, motion_pairs=True)
    options = {"num_frames": 3, "fps": 25, "width": 96, "height": 64}
    a = render_clip(left, np.random.default_rng(5), **options)
    b = render_clip(right, np.random.default_rng(5), **options)
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])


def _circular_centroids(frames, axis):
    """Per frame, the object's position along ``axis`` as an angle on the wrapped frame."""
    chroma = frames.max(axis=3).astype(int) - frames.min(axis=3)
    mask = chroma > 80
    size = frames.shape[2 - axis]
    phase = np.exp(2j * np.pi * np.arange(size) / size)
    weights = mask.sum(axis=1 + axis)
    return np.angle((weights * phase).sum(axis=1)) * size / (2 * np.pi)


def _mean_step(row, root):
    out = decode_clip(_clip_path(root, row), codec="raw", short_side=None)
    frames = np.frombuffer(out["frames"], np.uint8).reshape(out["num_frames"], out["height"], out["width"], 3)
    axis = 0 if row["label"].endswith(("left", "right")) else 1
    positions = _circular_centroids(frames, axis)
    size = frames.shape[2 - axis]
    steps = (np.diff(positions) + size / 2) % size - size / 2
    return steps.mean()


def test_object_moves_in_the_labelled_direction(dataset):
    root, _, rows = dataset
    sign = {"left": -1, "up": -1, "right": 1, "down": 1}
    for row in rows[:24:3]:
        step = _mean_step(row, root)
        assert 1.0 < sign[row["label"].rsplit(" ", 1)[1]] * step < 4.0, (row["label"], step)
