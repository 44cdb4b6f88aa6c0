"""Synthetic ActivityNet 1.3 localization data in the real source formats, learnable in minutes.

Every video has a duration of 30-200 s at 24, 25 or 30 fps, one 16-frame snippet feature row per
16 frames, and 1-3 non-overlapping action segments (5-60 % of the duration each; both ranges are
arguments) of one class.
Snippet features are Gaussian noise, plus inside the actions a shift along one fixed "action"
direction and one along its class's own direction; a random gain and offset per video (so that a
global threshold fails and local contrast works), a 3-snippet box blur (as 16-frame pooling) and a
few one-snippet distractor pulses, which the blur leaves weaker than an action. C-TCN's scores are,
per stream, a softmax of noise plus a peak at the row's class (background = 0, class ``c`` of the
sorted class list = ``c + 1``), with noise of its own in each stream.

Layout written into ``out``::

    activity_net.v1-3.min.json             official layout (version, taxonomy, database; bare ids)
    activitynet_1.3_annotations.json       BMN / PaddleVideo per-video layout (v_ ids, with subset)
    bsn/anet_anno_action.json              BSN's per-video layout (v_ ids, no subset) ...
    bsn/video_info_new.csv                 ... and its video,numFrame,seconds,fps,rfps,subset,featureFrame
    snippets/v_<id>.npy                    raw snippet features [T, D] float32, T = 45-375
    csv_mean_<tscale>/v_<id>.csv           BSN's rescaled features, header f0..f<D-1>, tscale rows
    fix_feat_<tscale>/v_<id>.npy           the same rows, float32 [tscale, D]
    ctcn/{rgb,flow}_{train,val,test}/v_<id>.pkl   {b'scores': [T, C + 1] float32}, pickle protocol 2

The rescaled features are made by the converter's own :func:`~videotk.pipelines.activitynet.rescale_bsn`,
so all three feature layouts convert to the same records. Subsets: a few ``testing`` videos (no
annotations in the files, as in ActivityNet), a quarter of the rest ``validation``, the others
``training``. The same arguments give the same files.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .activitynet import SNIPPET_FRAMES, rescale_bsn

ID_ALPHABET = string.ascii_letters + string.digits + "-_"
ID_LENGTH = 11
ACTION_SHIFT = 2.0
CLASS_SHIFT = 2.0
SCORE_PEAK = 3.0
CLASS_NAMES = ("Long jump", "Washing dishes", "Playing guitarra", "Walking the dog", "Making a sandwich",
               "Shoveling snow", "Skateboarding", "Brushing teeth", "Painting fence", "Rock climbing")
STREAM_FOLDERS = {"training": "train", "validation": "val", "testing": "test"}


@dataclass(frozen=True)
class SynthActivityNet:
    """What :func:`synth_activitynet` wrote (see the module docstring for the layout)."""

    root: Path
    official_json: Path
    per_video_json: Path
    bsn_json: Path
    video_info: Path
    snippet_dir: Path
    csv_dir: Path
    npy_dir: Path
    ctcn_dir: Path
    classes: list[str]
    subsets: dict[str, int]


@dataclass
class _Video:
    id: str
    subset: str
    fps: float
    duration: float
    duration_frame: int
    segments: list[tuple[float, float]]
    label: int
    snippets: np.ndarray  # [T, D] float32


def synth_activitynet(
    out_dir: str | os.PathLike,
    *,
    num_videos: int = 64,
    num_classes: int = 4,
    tscale: int = 100,
    feature_dim: int = 400,
    segments: tuple[int, int] = (1, 3),
    segment_length: tuple[float, float] = (0.05, 0.6),
    seed: int = 0,
) -> SynthActivityNet:
    """Write ``num_videos`` synthetic videos of ``num_classes`` classes into ``out_dir``, each with
    ``segments`` (lowest, highest) action segments of ``segment_length`` (fractions of the video)."""
    _check(num_videos, num_classes, tscale, feature_dim)
    if not (1 <= segments[0] <= segments[1] and 0 < segment_length[0] <= segment_length[1] < 1):
        raise ValueError(f"segments {segments} must be 1 <= low <= high and segment_length {segment_length} "
                         "fractions 0 < low <= high < 1")
    rng = np.random.default_rng(seed)
    classes = sorted(_class_names(num_classes))
    action, patterns = _directions(rng, num_classes, feature_dim)
    subsets = _subsets(rng, num_videos)
    ids = _ids(rng, num_videos)
    videos = [_video(rng, vid, subset, action, patterns, segments, segment_length) for vid, subset in zip(ids, subsets)]
    root = Path(out_dir)
    layout = SynthActivityNet(
        root=root, official_json=root / "activity_net.v1-3.min.json",
        per_video_json=root / "activitynet_1.3_annotations.json", bsn_json=root / "bsn" / "anet_anno_action.json",
        video_info=root / "bsn" / "video_info_new.csv", snippet_dir=root / "snippets",
        csv_dir=root / f"csv_mean_{tscale}", npy_dir=root / f"fix_feat_{tscale}", ctcn_dir=root / "ctcn",
        classes=classes, subsets={name: subsets.count(name) for name in ("training", "validation", "testing")})
    _write_annotations(layout, videos)
    _write_features(layout, videos, tscale)
    _write_scores(rng, layout.ctcn_dir, videos, num_classes)
    return layout


def _check(num_videos: int, num_classes: int, tscale: int, feature_dim: int) -> None:
    if num_videos < 4:
        raise ValueError(f"--videos {num_videos}: at least 4, for training, validation and testing videos")
    if num_classes < 1 or tscale < 1:
        raise ValueError("--classes and --tscale must be at least 1")
    if feature_dim < 2:
        raise ValueError(f"--feature-dim {feature_dim}: at least 2 (an action direction and class directions)")


def _class_names(count: int) -> list[str]:
    return [CLASS_NAMES[i] if i < len(CLASS_NAMES) else f"Activity {i:03d}" for i in range(count)]


def _directions(rng: np.random.Generator, num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit "action" direction ``[D]`` and one unit direction per class ``[C, D]`` orthogonal to it."""
    action = _unit(rng.standard_normal(dim))
    patterns = rng.standard_normal((num_classes, dim))
    patterns -= np.outer(patterns @ action, action)
    return action, patterns / np.linalg.norm(patterns, axis=1, keepdims=True)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _subsets(rng: np.random.Generator, count: int) -> list[str]:
    testing = max(2, count // 16)
    validation = max(1, (count - testing) // 4)
    names = ["testing"] * testing + ["validation"] * validation + ["training"] * (count - testing - validation)
    return [names[i] for i in rng.permutation(count)]


def _ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < count:
        candidate = "".join(rng.choice(list(ID_ALPHABET), ID_LENGTH))
        if not candidate.startswith("v_"):
            ids.add(candidate)
    return sorted(ids, key=lambda _: rng.random())


def _video(rng: np.random.Generator, vid: str, subset: str, action: np.ndarray, patterns: np.ndarray,
           count: tuple[int, int], length: tuple[float, float]) -> _Video:
    fps = float(rng.choice([24.0, 25.0, 30.0]))
    duration = round(float(rng.uniform(30, 200)), 3)
    duration_frame = int(duration * fps) - int(rng.integers(0, 6))
    segments = _segments(rng, duration, count, length)
    length = max(2, round(duration_frame / SNIPPET_FRAMES))
    label = int(rng.integers(len(patterns)))
    centres = (np.arange(length) + 0.5) * SNIPPET_FRAMES * duration / duration_frame
    inside = np.zeros(length, bool)
    for start, end in segments:
        inside |= (centres >= start) & (centres <= end)
    signal = rng.standard_normal((length, len(action)))
    signal[inside] += ACTION_SHIFT * action + CLASS_SHIFT * patterns[label]
    pulses = rng.choice(length, size=min(length, int(rng.integers(2, 5))), replace=False)
    signal[pulses] += ACTION_SHIFT * action
    signal = _box_blur(signal)
    gain, offset = rng.uniform(0.7, 1.5), rng.uniform(-1.0, 1.0) * ACTION_SHIFT / 2
    snippets = (gain * signal + offset * action).astype(np.float32)
    return _Video(vid, subset, fps, duration, duration_frame, segments, label, snippets)


def _segments(rng: np.random.Generator, duration: float, count: tuple[int, int] = (1, 3),
              length: tuple[float, float] = (0.05, 0.6)) -> list[tuple[float, float]]:
    """``count`` (1-3 by default) non-overlapping segments of ``length`` (5-60 %) of ``duration``
    each, in order, in seconds; shortened together when they would fill more than 85 %."""
    count = int(rng.integers(count[0], count[1] + 1))
    lengths = rng.uniform(length[0], length[1], count)
    lengths *= min(1.0, 0.85 / lengths.sum())
    gaps = rng.dirichlet(np.ones(count + 1)) * (1.0 - lengths.sum())
    segments, at = [], 0.0
    for gap, length in zip(gaps, lengths):
        at += gap
        segments.append((round(at * duration, 2), round((at + length) * duration, 2)))
        at += length
    return segments


def _box_blur(signal: np.ndarray) -> np.ndarray:
    """The mean over each row and its neighbours (two rows at the ends)."""
    padded = np.concatenate([signal[:1] * 0, signal, signal[:1] * 0])
    counts = np.full((len(signal), 1), 3.0)
    counts[0] = counts[-1] = 2.0
    return (padded[:-2] + padded[1:-1] + padded[2:]) / counts


def _write_annotations(layout: SynthActivityNet, videos: list[_Video]) -> None:
    layout.bsn_json.parent.mkdir(parents=True, exist_ok=True)
    classes = layout.classes
    database, per_video, bsn, info = {}, {}, {}, []
    for v in videos:
        notes = [] if v.subset == "testing" else [{"segment": [s, e], "label": classes[v.label]} for s, e in v.segments]
        feature_frame = SNIPPET_FRAMES * len(v.snippets)
        database[v.id] = {"subset": v.subset, "duration": v.duration, "resolution": "320x240",
                          "url": f"https://www.youtube.com/watch?v={v.id}", "annotations": notes}
        bsn[f"v_{v.id}"] = {"duration_second": v.duration, "duration_frame": v.duration_frame,
                            "annotations": notes, "feature_frame": feature_frame}
        per_video[f"v_{v.id}"] = {**bsn[f"v_{v.id}"], "subset": v.subset}
        info.append([f"v_{v.id}", v.duration_frame, v.duration, v.fps, round(v.duration_frame / v.duration, 10),
                     v.subset, feature_frame])
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None}]
    taxonomy += [{"nodeId": i + 1, "nodeName": name, "parentId": 0, "parentName": "Root"} for i, name in enumerate(classes)]
    layout.official_json.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}))
    layout.per_video_json.write_text(json.dumps(per_video))
    layout.bsn_json.write_text(json.dumps(bsn))
    with open(layout.video_info, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "numFrame", "seconds", "fps", "rfps", "subset", "featureFrame"])
        writer.writerows(info)


def _write_features(layout: SynthActivityNet, videos: list[_Video], tscale: int) -> None:
    for folder in (layout.snippet_dir, layout.csv_dir, layout.npy_dir):
        folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(f"f{i}" for i in range(videos[0].snippets.shape[1]))
    for v in videos:
        np.save(layout.snippet_dir / f"v_{v.id}.npy", v.snippets)
        rows = rescale_bsn(v.snippets, tscale, snippet_seconds=SNIPPET_FRAMES * v.duration / v.duration_frame)
        rows = rows.astype(np.float32)
        np.save(layout.npy_dir / f"v_{v.id}.npy", rows)
        np.savetxt(layout.csv_dir / f"v_{v.id}.csv", rows, fmt="%.9g", delimiter=",", header=header, comments="")


def _write_scores(rng: np.random.Generator, root: Path, videos: list[_Video], num_classes: int) -> None:
    """C-TCN's per-stream scores ``[T, C + 1]``; the flow stream is sometimes a row shorter, as real
    streams differ in length (the reader cuts both to the shorter)."""
    for v in videos:
        length = len(v.snippets)
        centres = (np.arange(length) + 0.5) * SNIPPET_FRAMES * v.duration / v.duration_frame
        row_class = np.zeros(length, np.int64)
        for start, end in v.segments:
            row_class[(centres >= start) & (centres <= end)] = v.label + 1
        for stream, rows in (("rgb", length), ("flow", length - int(rng.integers(0, 2)))):
            logits = rng.standard_normal((rows, num_classes + 1))
            logits[np.arange(rows), row_class[:rows]] += SCORE_PEAK
            scores = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
            folder = root / f"{stream}_{STREAM_FOLDERS[v.subset]}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"v_{v.id}.pkl", "wb") as handle:
                pickle.dump({b"scores": scores}, handle, protocol=2)
