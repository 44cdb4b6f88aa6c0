"""Synthetic ActivityNet Captions and TACoS sources in their real on-disk layouts, made so that a
small captioning (ETS) or grounding (TALL) model can learn them on a CPU.

ActivityNet Captions (:func:`synth_anet_captions`): a video is a run of events, each 3-10 frames
(at 5 fps) of one of six kinds; a frame is its kind's fixed random prototype plus Gaussian noise
(frames between events are noise only). A captioned segment covers 2-3 consecutive events and its
caption names their kinds in order, "A person runs then jumps.", so the caption is a function of
the order of events in the segment. Training captions use every kind equally often, so each word
appears at least three times and the whole vocabulary passes the frequency cut. ``val_2.json``
groups the same validation events differently, as a second set of annotators would.

TACoS (:func:`synth_tacos`): a movie is cut into 5-10 intervals, each showing a distinct topic of
20; a frame is its topic's prototype plus noise, and a window's feature is the mean over its frames
(computed exactly: the overlap-weighted mix of prototypes plus noise of the mean's spread), so a
window that overlaps an interval in part is a mixture and the offsets can be regressed. Each
interval has 1-2 sentences; a sentence vector is its topic's fixed random embedding plus noise.
Train windows are 64/128/256/512 frames, test windows 128/256, both at 80% overlap.

Everything comes from the seed: the same arguments give the same files.
"""

from __future__ import annotations

import json
import os
import pickle
import string
from pathlib import Path

import numpy as np

ANET_FPS = 5
VERBS = ("runs", "jumps", "swims", "dances", "climbs", "throws")
ANET_MIN_EVENT, ANET_MAX_EVENT = 3, 10
MIN_WORD_COUNT = 3
ID_ALPHABET = string.ascii_letters + string.digits + "_-"
ID_LENGTH = 11
NOISE = 1.0

TOPICS = (
    "takes out a cutting board", "washes the carrot", "peels the cucumber", "cuts the onion",
    "takes out a knife", "puts the pan on the stove", "cracks an egg", "stirs the pot",
    "pours water into the bowl", "slices the bread", "rinses the plate", "seasons the meat",
    "grates the cheese", "opens the fridge", "fills the kettle", "chops the herbs",
    "squeezes the lemon", "mixes the dough", "throws away the peel", "dries the hands",
)
TACOS_TRAIN_SCALES = (64, 128, 256, 512)
TACOS_TEST_SCALES = (128, 256)
TACOS_OVERLAP = 0.8
TACOS_SENTENCE_NOISE = 0.3
FEATURE_FORMATS = ("npy", "h5", "pickle")


def synth_anet_captions(
    out_dir: str | os.PathLike,
    *,
    videos: int = 48,
    val_fraction: float = 0.25,
    feature_dim: int = 2048,
    feature_format: str = "npy",
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``train.json``, ``val_1.json``, ``val_2.json`` and ``features/`` into ``out_dir``.

    Captions files: ``{"v_<id>": {"duration", "timestamps", "sentences"}}``, timestamps in seconds
    0.05 s inside the segment's first and last frames (frame / 5). Features, one file per video of float32 ``[T, feature_dim]``
    at 5 fps: ``features/v_<id>.npy``, ``.h5`` (dataset ``features``) or, with ``feature_format``
    ``"pickle"``, the legacy extension-less pickle ``features/v_<id>``. Returns the paths written
    by name (``train``, ``val_1``, ``val_2``, ``features``).
    """
    num_val = round(videos * val_fraction)
    _check_anet(videos, num_val, feature_format)
    out = _new_folder(out_dir)
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((len(VERBS), feature_dim)).astype(np.float32)
    ids = _video_ids(rng, videos)
    layouts = [_anet_layout(rng) for _ in range(videos)]
    train_events = sum(len(seg) for layout in layouts[num_val:] for seg in layout["segments"])
    if train_events < MIN_WORD_COUNT * len(VERBS):
        raise ValueError(f"{videos - num_val} training videos hold {train_events} events; at least "
                         f"{MIN_WORD_COUNT * len(VERBS)} are needed so that every word appears {MIN_WORD_COUNT} times: "
                         "give more videos")
    balanced = iter(rng.permutation(np.arange(train_events) % len(VERBS)))
    (out / "features").mkdir(parents=True)
    files = {"train": {}, "val_1": {}, "val_2": {}}
    for index, (video_id, layout) in enumerate(zip(ids, layouts)):
        val = index < num_val
        kinds = [[int(rng.integers(len(VERBS))) if val else int(next(balanced)) for _ in seg] for seg in layout["segments"]]
        frames = _anet_frames(rng, layout, kinds, prototypes)
        _write_features(out / "features", "v_" + video_id, frames, feature_format)
        events = [(event, kind) for seg, seg_kinds in zip(layout["segments"], kinds) for event, kind in zip(seg, seg_kinds)]
        duration = round(len(frames) / ANET_FPS, 2)
        if val:
            files["val_1"]["v_" + video_id] = _captions_entry(duration, _grouped(events, layout["groups"]))
            files["val_2"]["v_" + video_id] = _captions_entry(duration, _regrouped(rng, events))
        else:
            files["train"]["v_" + video_id] = _captions_entry(duration, _grouped(events, layout["groups"]))
    paths = {name: out / f"{name}.json" for name in files}
    for name, data in files.items():
        paths[name].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return {**paths, "features": out / "features"}


def _new_folder(path: str | os.PathLike) -> Path:
    """``path``, created; a folder that exists must be empty, so that no earlier file mixes in."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"--out {path}: {'is not empty' if path.is_dir() else 'is a file'}; synthetic data is "
                         "written into a new or empty folder, so that no earlier file mixes in")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_anet(videos: int, num_val: int, feature_format: str) -> None:
    if feature_format not in FEATURE_FORMATS:
        raise ValueError(f"feature format {feature_format!r}; expected one of {', '.join(FEATURE_FORMATS)}")
    if num_val < 1 or num_val >= videos:
        raise ValueError(f"{videos} videos with a validation fraction giving {num_val} validation videos; "
                         "both splits need at least one video")


def _video_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        candidate = "".join(rng.choice(list(ID_ALPHABET), ID_LENGTH))
        if candidate not in ids:
            ids.append(candidate)
    return ids


def _anet_layout(rng: np.random.Generator) -> dict:
    """Where a video's events are: ``segments`` lists of ``(first_frame, end_frame)`` per event,
    laid one after another with noise-only gaps; ``groups`` the events of each captioned segment."""
    position = int(rng.integers(0, 6))
    segments = []
    for _ in range(int(rng.integers(2, 4))):
        events = []
        for _ in range(int(rng.integers(2, 4))):
            length = int(rng.integers(ANET_MIN_EVENT, ANET_MAX_EVENT + 1))
            events.append((position, position + length))
            position += length
        segments.append(events)
        position += int(rng.integers(0, 6))
    counts = [len(seg) for seg in segments]
    return {"segments": segments, "groups": counts, "frames": position}


def _anet_frames(rng: np.random.Generator, layout: dict, kinds: list[list[int]], prototypes: np.ndarray) -> np.ndarray:
    frames = NOISE * rng.standard_normal((layout["frames"], prototypes.shape[1]), dtype=np.float32)
    for seg, seg_kinds in zip(layout["segments"], kinds):
        for (start, end), kind in zip(seg, seg_kinds):
            frames[start:end] += prototypes[kind]
    return frames


def _grouped(events: list, sizes: list[int]) -> list[list]:
    groups, start = [], 0
    for size in sizes:
        groups.append(events[start : start + size])
        start += size
    return groups


def _regrouped(rng: np.random.Generator, events: list) -> list[list]:
    """The same events split into other runs of 2-3 (a last run of 1 joins the one before)."""
    sizes, left = [], len(events)
    while left > 0:
        size = min(int(rng.integers(2, 4)), left)
        if size == 1 and sizes:
            sizes[-1] += 1
        else:
            sizes.append(size)
        left -= size
    return _grouped(events, sizes)


def _captions_entry(duration: float, groups: list[list]) -> dict:
    """A video's captions: each group of ``((first_frame, end_frame), kind)`` events is a segment.
    Its timestamps sit a quarter frame inside the boundary frames, so that the reader's slice
    ``int(start * fps) : int(end * fps + 0.5)`` holds exactly the segment's frames (at the boundary
    itself, float rounding may take in a frame of the event before)."""
    inside = 0.25 / ANET_FPS
    stamps = [[round(group[0][0][0] / ANET_FPS + inside, 2), round(group[-1][0][1] / ANET_FPS - inside, 2)]
              for group in groups]
    sentences = ["A person " + " then ".join(VERBS[kind] for _, kind in group) + "." for group in groups]
    return {"duration": duration, "timestamps": stamps, "sentences": sentences}


def _write_features(folder: Path, name: str, frames: np.ndarray, feature_format: str) -> None:
    if feature_format == "npy":
        np.save(folder / f"{name}.npy", frames)
    elif feature_format == "h5":
        import h5py

        with h5py.File(folder / f"{name}.h5", "w") as f:
            f.create_dataset("features", data=frames)
    else:
        with open(folder / name, "wb") as f:
            pickle.dump(frames, f, protocol=2)


def synth_tacos(
    out_dir: str | os.PathLike,
    *,
    movies: int = 48,
    test_fraction: float = 0.25,
    min_frames: int = 1000,
    max_frames: int = 2000,
    feature_dim: int = 4096,
    sentence_dim: int = 4800,
    legacy: bool = False,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the TACoS sources of ``movies`` movies into ``out_dir``::

        train/<movie>.avi_<start>_<end>.npy   float32 [feature_dim], windows of 64/128/256/512 frames
        test/<movie>.avi_<start>_<end>.npy    windows of 128/256 frames
        train.json, test.json                 annotations, plain layout (see videotk.pipelines.tacos)
        train_sentvec.npy, test_sentvec.npy   float32 [S, sentence_dim], the rows the JSON names

    With ``legacy`` also the legacy files: ``train_clip-sentvec.pkl`` / ``test_clip-sentvec.pkl``
    (lists of ``(clip_name, [vector, ...])``) and ``video_allframes_info.pkl`` (``{movie: frames}``).
    Returns the paths written by name.
    """
    num_test = round(movies * test_fraction)
    _check_tacos(movies, num_test, min_frames, max_frames)
    out = _new_folder(out_dir)
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((len(TOPICS), feature_dim)).astype(np.float32)
    embeddings = rng.standard_normal((len(TOPICS), sentence_dim)).astype(np.float32)
    names = _movie_names(rng, movies)
    paths = {}
    frame_counts = {}
    for subset, chosen, scales in (("test", names[:num_test], TACOS_TEST_SCALES), ("train", names[num_test:], TACOS_TRAIN_SCALES)):
        (out / subset).mkdir()
        annotations, vectors, legacy_items = {}, [], []
        for name in chosen:
            num_frames = int(rng.integers(min_frames, max_frames + 1))
            frame_counts[name] = num_frames
            intervals = _intervals(rng, num_frames)
            _write_windows(rng, out / subset, name, intervals, num_frames, scales, prototypes)
            sentences = []
            for start, end, topic in intervals:
                clip_vectors = []
                for _ in range(int(rng.integers(1, 3))):
                    vector = embeddings[topic] + TACOS_SENTENCE_NOISE * rng.standard_normal(sentence_dim, dtype=np.float32)
                    sentences.append({"span": [start, end], "vector": len(vectors), "text": f"The person {TOPICS[topic]}."})
                    vectors.append(vector)
                    clip_vectors.append(vector)
                legacy_items.append((f"{name}.avi_{start}_{end}", clip_vectors))
            annotations[name] = {"num_frames": num_frames, "sentences": sentences}
        paths[f"{subset}_vectors"] = out / f"{subset}_sentvec.npy"
        np.save(paths[f"{subset}_vectors"], np.stack(vectors).astype(np.float32))
        paths[subset] = out / f"{subset}.json"
        document = {"dataset": "tacos", "version": 1, "subset": subset, "vectors": paths[f"{subset}_vectors"].name,
                    "movies": annotations}
        paths[subset].write_text(json.dumps(document) + "\n", encoding="utf-8")
        paths[f"{subset}_windows"] = out / subset
        if legacy:
            paths[f"{subset}_legacy"] = _pickle(out / f"{subset}_clip-sentvec.pkl", legacy_items)
    if legacy:
        paths["frame_counts"] = _pickle(out / "video_allframes_info.pkl", frame_counts)
    return paths


def _check_tacos(movies: int, num_test: int, min_frames: int, max_frames: int) -> None:
    if num_test < 1 or num_test >= movies:
        raise ValueError(f"{movies} movies with a test fraction giving {num_test} test movies; "
                         "both splits need at least one movie")
    longest = max(TACOS_TRAIN_SCALES)
    if not longest <= min_frames <= max_frames:
        raise ValueError(f"frames per movie {min_frames}..{max_frames}: need {longest} <= min <= max, so that every "
                         "window length fits")


def _movie_names(rng: np.random.Generator, count: int) -> list[str]:
    """TACoS-style names ``s13-d21``: subject and dish numbers, all different."""
    picks = rng.permutation(100 * 100)[:count]
    return [f"s{pick // 100:02d}-d{pick % 100:02d}" for pick in picks]


def _intervals(rng: np.random.Generator, num_frames: int) -> list[tuple[int, int, int]]:
    """``(start, end, topic)`` of 5-10 intervals covering the movie, each of a distinct topic and at
    least half of the even length."""
    count = int(rng.integers(5, 11))
    lengths = 0.5 + rng.random(count)
    bounds = np.round(np.concatenate([[0], np.cumsum(lengths)]) / lengths.sum() * num_frames).astype(int)
    topics = rng.choice(len(TOPICS), count, replace=False)
    return [(int(bounds[i]), int(bounds[i + 1]), int(topics[i])) for i in range(count)]


def window_spans(num_frames: int, scales: tuple[int, ...], overlap: float = TACOS_OVERLAP) -> list[tuple[int, int]]:
    """Sliding windows ``(start, end)`` of each length in ``scales``, stepping by ``(1 - overlap)`` of
    the length and lying inside the movie."""
    spans = []
    for length in scales:
        step = length * (1 - overlap)
        k = 0
        while round(k * step) + length <= num_frames:
            spans.append((round(k * step), round(k * step) + length))
            k += 1
    return spans


def _write_windows(rng: np.random.Generator, folder: Path, name: str, intervals: list, num_frames: int,
                   scales: tuple[int, ...], prototypes: np.ndarray) -> None:
    spans = window_spans(num_frames, scales)
    starts = np.array([s for s, _ in spans])[:, None]
    ends = np.array([e for _, e in spans])[:, None]
    lows, highs = np.array([i[0] for i in intervals])[None], np.array([i[1] for i in intervals])[None]
    overlap = np.clip(np.minimum(ends, highs) - np.maximum(starts, lows), 0, None) / (ends - starts)
    topics = [i[2] for i in intervals]
    features = rng.standard_normal((len(spans), prototypes.shape[1]), dtype=np.float32)
    features *= (NOISE / np.sqrt(ends - starts)).astype(np.float32)
    features += overlap.astype(np.float32) @ prototypes[topics]
    for (start, end), feature in zip(spans, features):
        np.save(folder / f"{name}.avi_{start}_{end}.npy", feature)


def _pickle(path: Path, data) -> Path:
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
    return path
