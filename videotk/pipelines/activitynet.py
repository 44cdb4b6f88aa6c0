"""``vtk convert activitynet``: ActivityNet 1.3 features and annotations to a cache, one record per video.

Annotations come in either of two layouts (found from the file's content):

- the official ActivityNet 1.3 JSON: ``{"version", "taxonomy", "database": {<id>: {"subset",
  "duration", "annotations": [{"segment": [start, end], "label"}]}}}``, ids without ``v_``;
- BSN / BMN's per-video JSON: ``{"v_<id>": {"duration_second", "duration_frame",
  "feature_frame", "subset", "annotations"}}`` (BSN's own file has no ``subset``). A
  ``video_info_new.csv`` beside the file (``video,numFrame,seconds,fps,rfps,subset,featureFrame``)
  is read too, and its columns are used where it has them.

Features, found from what ``--features`` holds:

- snippet features, one file per video named ``v_<id>`` or ``<id>``, ``[T, D]`` of any T: ``.csv``
  (BSN's ``csv_mean_100``, header ``f0..f399``), ``.npy`` (PaddleVideo's ``fix_feat_100``) or
  ``.h5`` (one dataset); or one ``.h5`` file holding a dataset, or a group of one dataset, per video.
  They are rescaled to ``tscale`` rows by BSN's procedure (:func:`rescale_bsn`); features that
  already have ``tscale`` rows are stored as they are;
- C-TCN's class scores: sub-folders whose names hold ``rgb`` and ``flow``, with one legacy pickle
  ``<name>.pkl`` per video in each (``{b'scores': [T, C]}``), read by the restricted unpickler.
  Both streams are cut to the shorter and concatenated to ``[T, C_rgb + C_flow]`` at their native
  length, as the C-TCN reader does.

Ids with and without ``v_`` match each other; the cache stores them without, as the ActivityNet
result file and evaluator do. A feature file without annotations is ``skipped``, an annotated
video without features ``missing``; features of the wrong shape, with NaN, or unreadable, and
unusable annotation entries are ``failed``; all of them go to errors.jsonl. Videos of the testing
subset keep their (empty) ground truth.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats.manifest import error_entry
from ..formats.schema import activitynet_columns
from .legacy_pickle import LegacyPickleError, load_legacy_pickle
from .runner import JobSpec, Summary, Task, check_readable, file_identity, run_job, task_key

log = logging.getLogger(__name__)

VIDEO_INFO = "video_info_new.csv"
SNIPPET_SUFFIXES = {".csv": "csv", ".npy": "npy", ".h5": "h5", ".hdf5": "h5"}
SNIPPET_FRAMES = 16  # frames per snippet of the TSN features BSN was built on
BSN_SAMPLES_PER_BIN = 3
BSN_EPSILON_SECONDS = 1e-4
PROBE_FILES = 20
PROBE_AGREE = 3
EXPECTED_FEATURES = ("one file per video (v_<id>.csv as BSN's csv_mean_100, v_<id>.npy as PaddleVideo's "
                     "fix_feat_100, or .npy / .csv / .h5 snippet features of any length), one .h5 file holding "
                     "every video, or C-TCN's rgb and flow folders of <name>.pkl score files")


class AnnotationError(ValueError):
    """The annotations file cannot be used at all."""


class FeatureError(ValueError):
    """One video's features cannot be used; ``reason`` says why."""


@dataclass(frozen=True)
class Video:
    """One annotated video: ``id`` without ``v_``; ``segments`` in seconds; ``labels`` class indices;
    frame counts -1 when the annotations do not give them."""

    id: str
    subset: str
    duration: float
    duration_frame: int
    feature_frame: int
    segments: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


@dataclass
class Annotations:
    """What an annotations file holds: ``layout`` ``"activitynet"`` or ``"bsn"``, the videos by id,
    the sorted class names and one error entry per unusable video."""

    path: Path
    layout: str
    videos: dict[str, Video]
    classes: list[str]
    errors: list[dict]


@dataclass(frozen=True)
class FeatureFile:
    """Where one video's features are: ``name`` as the features call it (file stem or HDF5 key),
    ``paths`` the file (or the rgb and flow pickles), ``sources`` the same relative to --features.
    ``problem`` is set when the video's features are incomplete."""

    name: str
    paths: tuple[str, ...]
    sources: tuple[str, ...]
    key: str | None = None
    problem: str | None = None


@dataclass
class Features:
    """The feature files under --features: ``kind`` is ``csv``, ``npy``, ``h5`` (a file per video),
    ``h5-videos`` (one file of many) or ``scores`` (C-TCN)."""

    root: Path
    kind: str
    files: list[FeatureFile]

    @property
    def feature_kind(self) -> str:
        return "scores" if self.kind == "scores" else "snippet"


# ---------------------------------------------------------------------------------------------------- annotations


def bare_id(name: str) -> str:
    """``name`` without its ``v_`` prefix."""
    return name.removeprefix("v_")


def read_annotations(path: str | os.PathLike) -> Annotations:
    """The videos of an ActivityNet 1.3 or BSN / BMN annotations file (see the module docstring)."""
    path = Path(path)
    check_readable(path, "--annotations")
    if not path.is_file():
        raise FileNotFoundError(f"--annotations {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"--annotations {path}: cannot be read as JSON ({exc})") from None
    layout = _layout(data)
    if layout is None:
        raise AnnotationError(
            f"--annotations {path}: neither the ActivityNet 1.3 layout ({{version, taxonomy, database: {{<id>: "
            "{subset, duration, annotations}}}}) nor BSN / BMN's per-video layout ({v_<id>: {duration_second, "
            "duration_frame, feature_frame, subset, annotations}})")
    entries = data["database"] if layout == "activitynet" else data
    info = _read_video_info(path.parent / VIDEO_INFO)
    parsed, errors = {}, []
    for key, entry in entries.items():
        video_id = key if layout == "activitynet" else bare_id(key)
        try:
            parsed[video_id] = _parse_entry(entry, layout, info.get(video_id, {}))
        except ValueError as exc:
            errors.append(error_entry(path.name, key, f"unusable annotation: {exc}"))
    classes = sorted({name for fields in parsed.values() for name in fields["label_names"]}
                     | (_taxonomy_leaves(data.get("taxonomy")) if layout == "activitynet" else set()))
    index = {name: i for i, name in enumerate(classes)}
    videos = {vid: _video(vid, fields, index) for vid, fields in parsed.items()}
    return Annotations(path, layout, videos, classes, errors)


def _layout(data) -> str | None:
    if not isinstance(data, dict) or not data:
        return None
    if isinstance(data.get("database"), dict):
        return "activitynet"
    if all(isinstance(v, dict) and ("duration_second" in v or "annotations" in v) for v in data.values()):
        return "bsn"
    return None


def _taxonomy_leaves(taxonomy) -> set[str]:
    """The class names of an ActivityNet taxonomy: the nodes that are nobody's parent."""
    if not isinstance(taxonomy, list) or not all(isinstance(node, dict) for node in taxonomy):
        return set()
    parents = {node.get("parentId") for node in taxonomy}
    return {str(node["nodeName"]) for node in taxonomy if node.get("nodeId") not in parents and "nodeName" in node}


def _read_video_info(path: Path) -> dict[str, dict]:
    """The rows of a BSN ``video_info_new.csv`` by id (empty when there is no such file)."""
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(f"{path}: cannot be read ({exc})") from None
    if rows and "video" not in rows[0]:
        raise AnnotationError(f"{path}: no 'video' column; expected video,numFrame,seconds,fps,rfps,subset,featureFrame")
    log.info("using %s beside the annotations", path)
    return {bare_id(row["video"].strip()): row for row in rows if row.get("video")}


def _parse_entry(entry, layout: str, info: dict) -> dict:
    """The fields of one annotation entry, the video_info row's columns taking precedence."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    duration_key = "duration" if layout == "activitynet" else "duration_second"
    duration = info.get("seconds") or entry.get(duration_key)
    segments, names = [], []
    for number, item in enumerate(entry.get("annotations") or []):
        segment, name = _annotation(item, number)
        segments.append(segment)
        names.append(name)
    return {
        "subset": str(info.get("subset") or entry.get("subset") or ""),
        "duration": _positive(duration, duration_key),
        "duration_frame": _frames(info.get("numFrame") or entry.get("duration_frame"), "duration_frame"),
        "feature_frame": _frames(info.get("featureFrame") or entry.get("feature_frame"), "feature_frame"),
        "segments": tuple(segments),
        "label_names": tuple(names),
    }


def _annotation(item, number: int) -> tuple[tuple[float, float], str]:
    if not isinstance(item, dict) or "segment" not in item or "label" not in item:
        raise ValueError(f"annotations[{number}] is not {{segment: [start, end], label}}")
    segment = item["segment"]
    try:
        start, end = (float(v) for v in segment)
    except (TypeError, ValueError):
        raise ValueError(f"annotations[{number}].segment {segment!r} is not [start, end] in seconds") from None
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"annotations[{number}].segment {segment!r} is not [start, end] with start <= end")
    return (start, end), str(item["label"])


def _positive(value, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} {value!r} is not a number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key} {value!r} is not a positive number of seconds")
    return number


def _frames(value, key: str) -> int:
    if value is None or value == "":
        return -1
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} {value!r} is not a frame count") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{key} {value!r} is not a whole number of frames")
    return int(number)


def _video(video_id: str, fields: dict, index: dict[str, int]) -> Video:
    return Video(video_id, fields["subset"], fields["duration"], fields["duration_frame"], fields["feature_frame"],
                 fields["segments"], tuple(index[name] for name in fields["label_names"]))


# ------------------------------------------------------------------------------------------------------- features


def find_features(path: str | os.PathLike, ids: set[str] | dict) -> Features:
    """The feature files ``--features`` holds (see the module docstring); ``ids`` are the annotated
    videos, used only to tell one HDF5 file of many videos from a folder of one file per video."""
    root = Path(path)
    check_readable(root, "--features")
    if root.is_file():
        if root.suffix.lower() not in (".h5", ".hdf5"):
            raise ValueError(f"--features {root}: a file, but not an .h5 file; give a folder of {EXPECTED_FEATURES}")
        return Features(root.parent, "h5-videos", _container_files(root, root.parent))
    if not root.is_dir():
        raise FileNotFoundError(f"--features {root}: no such folder")
    by_kind: dict[str, list[Path]] = {}
    for child in sorted(root.iterdir()):
        kind = SNIPPET_SUFFIXES.get(child.suffix.lower())
        if kind and child.is_file():
            by_kind.setdefault(kind, []).append(child)
    if len(by_kind) > 1:
        found = ", ".join(f"{len(files)} {kind}" for kind, files in sorted(by_kind.items()))
        raise ValueError(f"--features {root}: holds feature files of several kinds ({found}); "
                         "give a folder of one kind")
    if by_kind:
        kind, files = next(iter(by_kind.items()))
        if kind == "h5" and len(files) == 1 and _match(files[0].stem, ids) is None:
            return Features(root, "h5-videos", _container_files(files[0], root))
        return Features(root, kind, [FeatureFile(p.stem, (str(p),), (p.name,)) for p in files])
    scores = _score_files(root)
    if scores:
        return Features(root, "scores", scores)
    raise ValueError(f"--features {root}: no feature files found; expected {EXPECTED_FEATURES}")


def _match(name: str, ids) -> str | None:
    """The annotated id a feature file's ``name`` stands for (``v_<id>`` or ``<id>``), None if none."""
    if name.startswith("v_") and name[2:] in ids:
        return name[2:]
    return name if name in ids else None


def _container_files(path: Path, root: Path) -> list[FeatureFile]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            keys = sorted(handle.keys())
    except OSError as exc:
        raise ValueError(f"--features {path}: cannot be read as HDF5 ({exc})") from None
    source = path.relative_to(root).as_posix()
    return [FeatureFile(key, (str(path),), (f"{source}:{key}",), key=key) for key in keys]


def _score_files(root: Path) -> list[FeatureFile]:
    """C-TCN's score pickles, paired by name across the rgb and flow folders."""
    folders = [d for d in sorted(root.iterdir()) if d.is_dir()]
    streams = {}
    for stream in ("rgb", "flow"):
        found: dict[str, Path] = {}
        for folder in (d for d in folders if stream in d.name.lower()):
            for pickle_path in sorted(folder.glob("*.pkl")):
                found.setdefault(pickle_path.stem, pickle_path)
        streams[stream] = found
    rgb, flow = streams["rgb"], streams["flow"]
    if not rgb and not flow:
        return []
    files = []
    for name in sorted(set(rgb) | set(flow)):
        paths = tuple(p for p in (rgb.get(name), flow.get(name)) if p is not None)
        problem = None
        if len(paths) == 1:
            absent = "flow" if name in rgb else "rgb"
            problem = f"{'rgb' if name in rgb else 'flow'} scores without {absent} scores: no {name}.pkl in any {absent} folder"
        files.append(FeatureFile(name, tuple(map(str, paths)), tuple(p.relative_to(root).as_posix() for p in paths),
                                 problem=problem))
    return files


def read_features(kind: str, file: FeatureFile) -> np.ndarray:
    """One video's features ``[T, D]`` (float64, or the file's float dtype); FeatureError says why not."""
    if file.problem:
        raise FeatureError(file.problem)
    try:
        if kind == "scores":
            return _read_scores(file.paths)
        if kind == "csv":
            return _read_csv(file.paths[0])
        if kind == "npy":
            return _numeric(np.load(file.paths[0], allow_pickle=False))
        return _read_h5(file.paths[0], file.key)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, FeatureError):
            raise
        raise FeatureError(f"cannot be read: {' '.join(str(exc).split())}") from None


def _numeric(array) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise FeatureError(f"holds {array.dtype} values, not numbers")
    return array


def _read_csv(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    header = not _numbers(first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty file: reported below
        array = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=np.float64, ndmin=2)
    return array


def _numbers(line: str) -> bool:
    try:
        [float(field) for field in line.split(",")]
    except ValueError:
        return False
    return bool(line.strip())


def _read_h5(path: str, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        node = handle[key] if key is not None else handle
        return _numeric(_single_dataset(node)[()])


def _single_dataset(node):
    """The one dataset in ``node`` (a dataset, or a group holding exactly one, or one named ``features``)."""
    import h5py

    while isinstance(node, h5py.Group):
        names = list(node.keys())
        if "features" in names:
            names = ["features"]
        if len(names) != 1:
            raise FeatureError(f"{node.name} holds {', '.join(names) or 'nothing'}; expected one dataset")
        node = node[names[0]]
    return node


def _read_scores(paths: tuple[str, ...]) -> np.ndarray:
    streams = []
    for path in paths:
        if os.path.getsize(path) == 0:
            raise FeatureError(f"{Path(path).name}: empty file")
        try:
            data = load_legacy_pickle(path, encoding="bytes")
        except LegacyPickleError as exc:
            raise FeatureError(str(exc)) from None
        scores = data.get(b"scores", data.get("scores")) if isinstance(data, dict) else None
        if scores is None:
            raise FeatureError(f"{Path(path).name}: not a dict with key b'scores'")
        scores = _numeric(scores)
        if scores.ndim != 2:
            raise FeatureError(f"{Path(path).name}: scores of shape {list(scores.shape)}, expected [T, classes]")
        streams.append(scores)
    rows = min(len(s) for s in streams)
    return np.concatenate([s[:rows] for s in streams], axis=1)


def rescale_bsn(features: np.ndarray, tscale: int, *, snippet_seconds: float = 1.0) -> np.ndarray:
    """BSN's rescaling of snippet features ``[T, D]`` to ``[tscale, D]`` (float64).

    Snippet ``i`` stands at its centre, ``(i + 0.5) * st`` seconds (``st = snippet_seconds``, 16
    frames at the video's frame rate), and features are interpolated linearly between centres. The
    span ``[0, T * st]`` is cut into ``tscale`` equal bins; bin ``k``, ``[k, k + 1] * T * st /
    tscale``, is clamped to ``[first centre + 1e-4 s, last centre - 1e-4 s]`` and its row is the
    mean of the interpolated features at 3 evenly spaced points from its start to its end. A bin
    wholly before the first centre or after the last is zeros: videos shorter than ``tscale / 2``
    snippets get zero rows at both ends, as in BSN's csv_mean_100. One snippet is repeated.
    """
    features = np.asarray(features, dtype=np.float64)
    length = len(features)
    if length == 1:
        return np.repeat(features, tscale, axis=0)
    first, last = 0.5 * snippet_seconds, (length - 0.5) * snippet_seconds
    span = length * snippet_seconds
    starts = np.arange(tscale) / tscale * span
    ends = np.arange(1, tscale + 1) / tscale * span
    low = np.maximum(first + BSN_EPSILON_SECONDS, starts)
    high = np.minimum(last - BSN_EPSILON_SECONDS, ends)
    outside = (high < first) | (low > last)
    points = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, BSN_SAMPLES_PER_BIN)
    position = np.clip(points / snippet_seconds - 0.5, 0.0, length - 1.0)
    below = np.minimum(np.floor(position).astype(np.int64), length - 2)
    weight = (position - below)[..., None]
    rows = (features[below] * (1.0 - weight) + features[below + 1] * weight).mean(axis=1)
    rows[outside] = 0.0
    return rows


def snippet_seconds(video: Video, length: int) -> float:
    """Seconds per snippet: 16 frames at the video's frame rate when its frame count is known, else
    the duration spread over the ``length`` snippets."""
    if video.duration_frame > 0:
        return SNIPPET_FRAMES * video.duration / video.duration_frame
    return video.duration / length


# ------------------------------------------------------------------------------------------------------------ job


def convert_activitynet(
    features: str | os.PathLike,
    annotations: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tscale: int = 100,
    videos_per_shard: int = 256,
    fmt: str = "parquet",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Convert the features under ``features`` of the videos in ``annotations`` into the cache ``out``.

    Snippet features are rescaled to ``tscale`` rows; C-TCN scores keep their length (the manifest's
    ``tscale`` is then None). See the module docstring for the layouts and the accounting.
    """
    if tscale < 1:
        raise ValueError(f"--tscale {tscale}: must be at least 1")
    found = read_annotations(annotations)
    source = find_features(features, found.videos)
    pairs, listing_errors = match_videos(found, source)
    dim = probe_dimension(source, [file for _, file in pairs])
    rows = None if source.feature_kind == "scores" else tscale
    spec = JobSpec(
        kind="activitynet",
        fmt=fmt,
        columns=activitynet_columns(dim, rows),
        options={"features": str(Path(features).resolve()), "annotations": str(found.path.resolve()),
                 "layout": found.layout, "feature_format": source.kind, "feature_kind": source.feature_kind,
                 "feature_dim": dim, "tscale": rows, "videos_per_shard": videos_per_shard},
        classes=found.classes,
    )
    tasks = []
    for index, start in enumerate(range(0, len(pairs), videos_per_shard)):
        chunk = pairs[start : start + videos_per_shard]
        identity = [(video, file.sources, [file_identity(p)[1:] for p in file.paths]) for video, file in chunk]
        sources = tuple(s for _, file in chunk for s in file.sources)
        tasks.append(Task(index, task_key(spec, identity), sources, (source.kind, rows, dim, chunk)))
    log.info("converting %d videos (%s features, %d classes) in %d shards", len(pairs), source.kind,
             len(found.classes), len(tasks))
    return run_job(spec, tasks, convert_chunk, out, listing_errors=listing_errors,
                   workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)


def match_videos(found: Annotations, source: Features) -> tuple[list[tuple[Video, FeatureFile]], list[dict]]:
    """Annotated videos paired with their feature files, sorted by id; error entries for the
    unusable annotations, the features nobody annotated (skipped), a second file for one video
    (skipped) and the annotated videos without features (missing)."""
    errors = list(found.errors)
    files: dict[str, FeatureFile] = {}
    for file in source.files:
        video_id = _match(file.name, found.videos)
        if video_id is None:
            errors.append(error_entry(file.sources[0], None, f"no annotation for it in {found.path.name}", "skipped"))
        elif video_id in files:
            errors.append(error_entry(file.sources[0], video_id,
                                      f"another feature file of the same video is used: {files[video_id].sources[0]}",
                                      "skipped"))
        else:
            files[video_id] = file
    pairs = []
    for video_id in sorted(found.videos):
        if video_id in files:
            pairs.append((found.videos[video_id], files[video_id]))
        else:
            errors.append(error_entry(found.path.name, video_id,
                                      f"missing: no feature file v_{video_id} or {video_id} under --features", "missing"))
    return pairs, errors


def probe_dimension(source: Features, files: list[FeatureFile]) -> int:
    """The feature dimension D: the most common among the first few readable files (one odd file
    does not set it for the others), ``PROBE_AGREE`` files agreeing being enough."""
    votes: Counter[int] = Counter()
    reasons = []
    for file in files[:PROBE_FILES]:
        try:
            array = read_features(source.kind, file)
        except FeatureError as exc:
            reasons.append(f"{file.sources[0]}: {exc}")
            continue
        if array.ndim != 2 or array.shape[1] == 0:
            reasons.append(f"{file.sources[0]}: shape {list(array.shape)}")
            continue
        votes[int(array.shape[1])] += 1
        if votes.most_common(1)[0][1] >= PROBE_AGREE:
            break
    if votes:
        return votes.most_common(1)[0][0]
    if not files:
        raise ValueError(f"--features {source.root}: none of its {len(source.files)} feature files belongs to a "
                         "video of --annotations")
    raise ValueError(f"--features {source.root}: none of the first {len(reasons)} feature files of annotated videos "
                     f"holds [T, D] features (first: {reasons[0]})")


def convert_chunk(payload: tuple[str, int | None, int, list[tuple[Video, FeatureFile]]], writer) -> list[dict]:
    """Write one record per video of a chunk to ``writer``; a video whose features fail is one error entry."""
    kind, tscale, dim, chunk = payload
    errors = []
    for video, file in chunk:
        try:
            features = _checked(read_features(kind, file), dim)
            if tscale is not None and len(features) != tscale:
                features = rescale_bsn(features, tscale, snippet_seconds=snippet_seconds(video, len(features)))
        except FeatureError as exc:
            errors.append(error_entry(file.sources[0], video.id, str(exc)))
            continue
        writer.write(record(video, features))
    return errors


def _checked(features: np.ndarray, dim: int) -> np.ndarray:
    if features.ndim != 2 or len(features) == 0 or features.shape[1] != dim:
        raise FeatureError(f"features of shape {list(features.shape)}, expected [T, {dim}] with T >= 1 "
                           f"(D = {dim} as the other videos')")
    bad = np.argwhere(~np.isfinite(features))
    if len(bad):
        row, column = bad[0]
        raise FeatureError(f"holds NaN or infinite values ({len(bad)}, the first at row {row}, column {column})")
    return features


def record(video: Video, features: np.ndarray) -> dict:
    """The cache record of one video (see :func:`videotk.formats.schema.activitynet_columns`)."""
    return {
        "id": video.id,
        "subset": video.subset,
        "duration": video.duration,
        "duration_frame": video.duration_frame,
        "feature_frame": video.feature_frame,
        "features": np.ascontiguousarray(features, dtype=np.float32),
        "segments": np.asarray(video.segments, dtype=np.float32).reshape(-1, 2),
        "labels": np.asarray(video.labels, dtype=np.int32),
    }
