"""Synthetic ActivityNet data: determinism, the real layouts, and actions and classes that show in the features."""

import csv
import json
import pickle

import numpy as np
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.pipelines.synth_activitynet import synth_activitynet

SMALL = dict(num_videos=24, num_classes=3, feature_dim=32)


def tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    first = tree_bytes(synth_activitynet(tmp_path / "a", seed=3, **SMALL).root)
    again = tree_bytes(synth_activitynet(tmp_path / "b", seed=3, **SMALL).root)
    other = tree_bytes(synth_activitynet(tmp_path / "c", seed=4, **SMALL).root)
    assert first == again
    assert first["activity_net.v1-3.min.json"] != other["activity_net.v1-3.min.json"]


def test_the_files_are_in_the_real_layouts(tmp_path):
    made = synth_activitynet(tmp_path, tscale=50, **SMALL)
    official = json.loads(made.official_json.read_text())
    assert official["version"] == "VERSION 1.3" and {n["nodeName"] for n in official["taxonomy"]} >= set(made.classes)
    video_id, entry = next(iter(official["database"].items()))
    assert len(video_id) == 11 and set(entry) >= {"subset", "duration", "annotations"}
    bsn = json.loads(made.bsn_json.read_text())
    assert set(bsn) == {f"v_{v}" for v in official["database"]}
    assert set(bsn[f"v_{video_id}"]) == {"duration_second", "duration_frame", "annotations", "feature_frame"}
    per_video = json.loads(made.per_video_json.read_text())
    assert per_video[f"v_{video_id}"]["subset"] == entry["subset"]
    with open(made.video_info, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"]
    assert made.subsets == {"training": 17, "validation": 5, "testing": 2}
    assert all(not e["annotations"] for e in official["database"].values() if e["subset"] == "testing")

    assert made.csv_dir.name == "csv_mean_50" and made.npy_dir.name == "fix_feat_50"
    lines = (made.csv_dir / f"v_{video_id}.csv").read_text().splitlines()
    assert lines[0] == ",".join(f"f{i}" for i in range(32)) and len(lines) == 51
    assert np.load(made.npy_dir / f"v_{video_id}.npy").shape == (50, 32)
    snippets = np.load(made.snippet_dir / f"v_{video_id}.npy")
    assert snippets.dtype == np.float32 and snippets.shape[1] == 32
    assert snippets.shape[0] * 16 == bsn[f"v_{video_id}"]["feature_frame"]

    split = {"training": "train", "validation": "val", "testing": "test"}[entry["subset"]]
    for stream in ("rgb", "flow"):
        data = (made.ctcn_dir / f"{stream}_{split}" / f"v_{video_id}.pkl").read_bytes()
        assert data[:2] == b"\x80\x02"  # protocol 2, as the legacy files
        scores = pickle.loads(data, encoding="bytes")[b"scores"]
        assert scores.shape[1] == 4 and abs(len(scores) - len(snippets)) <= 1
        np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)


def inside_mask(length, duration, duration_frame, segments):
    centres = (np.arange(length) + 0.5) * 16 * duration / duration_frame
    inside = np.zeros(length, bool)
    for start, end in segments:
        inside |= (centres >= start) & (centres <= end)
    return inside


def test_actions_and_classes_show_in_the_features(tmp_path):
    made = synth_activitynet(tmp_path, num_videos=48, num_classes=4, feature_dim=64, seed=2)
    bsn = json.loads(made.per_video_json.read_text())
    train, held_out = [], []
    for name, entry in bsn.items():
        if entry["subset"] == "testing":
            continue
        x = np.load(made.snippet_dir / f"{name}.npy").astype(np.float64)
        inside = inside_mask(len(x), entry["duration_second"], entry["duration_frame"],
                             [a["segment"] for a in entry["annotations"]])
        label = made.classes.index(entry["annotations"][0]["label"])
        (train if entry["subset"] == "training" else held_out).append((x, inside, label))
    # an action direction learnt on training videos separates action from background rows in held-out
    # videos once each video is centred on its own median: local contrast, not a global threshold
    direction = np.mean([x[m].mean(0) - x[~m].mean(0) for x, m, _ in train if m.any() and (~m).any()], axis=0)
    hits = []
    for x, inside, _ in held_out:
        projected = (x - np.median(x, axis=0)) @ direction
        hits.append(np.mean((projected > np.median(projected[~inside]) / 2 + projected[inside].mean() / 2) == inside))
    assert np.mean(hits) > 0.85
    # the class shows in the mean of a video's action rows: nearest class centroid beats chance by far
    centroids = np.stack([np.mean([x[m].mean(0) - x[~m].mean(0) for x, m, y in train if y == c], axis=0)
                          for c in range(4)])
    guesses = [np.argmin(np.linalg.norm(centroids - (x[m].mean(0) - x[~m].mean(0)), axis=1)) == y
               for x, m, y in held_out]
    assert np.mean(guesses) > 0.8


def test_cli_writes_and_prints_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["synth", "activitynet", "--out", str(tmp_path), "--videos", "8",
                                      "--feature-dim", "16", "--tscale", "20"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("wrote 8 videos of 4 classes")
    assert (tmp_path / "csv_mean_20").is_dir() and len(list((tmp_path / "fix_feat_20").iterdir())) == 8
