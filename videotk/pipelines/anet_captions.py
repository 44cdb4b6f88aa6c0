"""``vtk convert anet-captions``: ActivityNet Captions (JSON captions + per-video frame features)
to a cache of one record per video, with its captions tokenised and the vocabulary in the manifest.

Inputs:

- captions files ``{"v_<id>": {"duration": s, "timestamps": [[start, end], ...], "sentences": [...]}}``.
  The subset and reference set come from the file name: ``train.json`` is subset ``train``;
  ``val_1.json`` and ``val_2.json`` are subset ``val``, reference sets 1 and 2 (``test[_N].json``
  likewise; a prefix such as ``captions_val_1.json`` is allowed). A video of both validation
  files is one record holding the events of both.
- a features folder with one file per video, named by its id with or without ``v_``:
  ``<id>.npy`` (``[T, D]``), ``<id>.h5`` / ``.hdf5`` (a dataset ``features``, or named by the id,
  or the file's only dataset), ``<id>.pkl`` / ``.pickle``, or the legacy extension-less pickle
  ``v_<id>``. Pickles are read by :func:`~videotk.pipelines.legacy_pickle.load_legacy_pickle`
  (arrays, or a dict holding the array under the id or ``features``). ``T`` frames at ``fps``
  (5 for the ResNet-152 features), ``D`` the same for every video.

Record (columns in :func:`videotk.formats.schema.anet_captions_columns`), for a video of K events:
``id`` (bare, no ``v_``), ``subset``, ``duration`` (seconds, float64), ``num_frames`` (T),
``features`` float32 ``[T, D]``, ``segments`` float32 ``[K, 2]`` (start, end in seconds, as the
file gives them, not clipped), ``reference`` ``[K]`` (1: the first file of its subset, train.json
or val_1.json; 2: val_2.json), ``sentences`` ``[K]`` (raw text), ``tokens`` ``[K]`` (each caption
tokenised by :func:`~videotk.pipelines.text.tokenize`, tokens joined by single spaces),
``caption_ids`` (the word ids of every caption one after the other, without ``<s>`` / ``<e>``) and
``caption_lengths`` ``[K]`` (caption k owns ``caption_ids[sum(lengths[:k]) : sum(lengths[:k+1])]``).
Events are in file order, reference 1 first; every event is kept (two with the same timestamps
too). The vocabulary (see :mod:`videotk.pipelines.text`) is built from the training captions
before any task runs; its words are the manifest's ``classes`` and its digest is in the options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..formats.manifest import error_entry
from ..formats.schema import anet_captions_columns
from .legacy_pickle import LegacyPickleError, load_legacy_pickle
from .runner import (JobSpec, Summary, Task, UnreadableSource, check_readable, common_width, file_identity, run_job,
                     task_key)
from .text import MIN_COUNT, TOKENIZER, Vocabulary, build_vocabulary, tokenize

log = logging.getLogger(__name__)

FEATURE_SUFFIXES = (".npy", ".h5", ".hdf5", ".pkl", ".pickle")
LEGACY_PREFIX = "v_"
FPS = 5.0
KEYS = ("duration", "timestamps", "sentences")
WIDTH_SAMPLE = 5
_SUBSET = re.compile(r"(?:.*[_\-.])?(train|val|validation|test)(?:[_-]?(\d+))?", re.IGNORECASE)


class CaptionsError(ValueError):
    """A captions file that cannot be used at all (unreadable, not JSON, not this layout, unnamed subset)."""


class FeaturesError(ValueError):
    """``--features`` names no usable feature files."""


class FeatureFileError(ValueError):
    """One video's feature file cannot be read as a ``[T, D]`` array; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """One captioned event: seconds, raw sentence, its tokens, and its reference set (1 or 2)."""

    start: float
    end: float
    sentence: str
    tokens: tuple[str, ...]
    reference: int


@dataclass
class Video:
    """One video to convert: ``feature`` is its feature file relative to ``--features``."""

    id: str
    subset: str
    duration: float
    source: str
    events: list[Event] = field(default_factory=list)
    feature: str = ""


def bare_id(key: str) -> str:
    """A video id without ActivityNet's ``v_`` prefix: ``v_QOlSCBRmfWY`` -> ``QOlSCBRmfWY``."""
    return key.removeprefix(LEGACY_PREFIX)


def captions_subset(path: str | os.PathLike) -> tuple[str, int]:
    """``(subset, reference)`` named by a captions file: ``val_2.json`` -> ``("val", 2)``."""
    found = _SUBSET.fullmatch(Path(path).stem)
    if not found:
        raise CaptionsError(f"--captions {path}: cannot tell its subset from the name; name the files "
                            "train.json, val_1.json, val_2.json (or test.json)")
    subset = found.group(1).lower()
    return ("val" if subset == "validation" else subset), int(found.group(2) or 1)


def read_captions(paths: Sequence[str | os.PathLike]) -> tuple[dict[str, Video], list[dict]]:
    """Videos of every captions file by bare id, and one error entry per unusable entry."""
    named = [(Path(p), *captions_subset(p)) for p in paths]
    _refuse_repeated_sets(named)
    videos: dict[str, Video] = {}
    errors: list[dict] = []
    for path, subset, reference in sorted(named, key=lambda item: (item[1] != "train", item[1], item[2])):
        for key, entry in _load_captions(path).items():
            try:
                duration, events = _parse_entry(entry, reference)
            except ValueError as exc:
                errors.append(error_entry(path.name, key, f"bad entry: {exc}"))
                continue
            _add_events(videos, errors, path.name, key, subset, duration, events)
    return videos, errors


def _refuse_repeated_sets(named: list[tuple[Path, str, int]]) -> None:
    seen: dict[tuple[str, int], Path] = {}
    for path, subset, reference in named:
        if (subset, reference) in seen:
            raise CaptionsError(f"--captions {seen[subset, reference]} and {path} are both {subset} reference set "
                                f"{reference}; give each file once")
        seen[subset, reference] = path


def _load_captions(path: Path) -> dict:
    try:
        check_readable(path, "--captions")
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnreadableSource as exc:
        raise CaptionsError(str(exc)) from None
    except FileNotFoundError:
        raise CaptionsError(f"--captions {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptionsError(f"--captions {path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or (data and not any(_looks_like_video(v) for v in data.values())):
        found = f"keys {', '.join(map(repr, list(data)[:3]))}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise CaptionsError(f"--captions {path}: not ActivityNet Captions: expected an object "
                            f'{{"v_<id>": {{"duration", "timestamps", "sentences"}}}}, found {found}')
    return data


def _looks_like_video(entry) -> bool:
    return isinstance(entry, dict) and all(key in entry for key in KEYS)


def _parse_entry(entry, reference: int) -> tuple[float, list[Event]]:
    """``(duration, events)`` of one video entry; ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object with {', '.join(KEYS)}, got {type(entry).__name__}")
    absent = [key for key in KEYS if key not in entry]
    if absent:
        raise ValueError(f"no {', '.join(absent)}")
    duration = _seconds(entry["duration"], "duration")
    stamps, sentences = entry["timestamps"], entry["sentences"]
    if not isinstance(stamps, list) or not isinstance(sentences, list):
        raise ValueError("timestamps and sentences must be lists")
    if len(stamps) != len(sentences):
        raise ValueError(f"{len(stamps)} timestamps but {len(sentences)} sentences")
    events = []
    for k, (stamp, sentence) in enumerate(zip(stamps, sentences)):
        if not isinstance(stamp, list) or len(stamp) != 2:
            raise ValueError(f"timestamps[{k}] is not a [start, end] pair")
        if not isinstance(sentence, str):
            raise ValueError(f"sentences[{k}] is not a string")
        start, end = (_seconds(value, f"timestamps[{k}]") for value in stamp)
        events.append(Event(start, end, sentence, tuple(tokenize(sentence)), reference))
    return duration, events


def _seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} {value!r} is not a number of seconds")
    return float(value)


def _add_events(videos: dict[str, Video], errors: list[dict], source: str, key: str, subset: str,
                duration: float, events: list[Event]) -> None:
    """Add one file's events of video ``key``; a video of two subsets keeps its first one."""
    video_id = bare_id(key)
    video = videos.get(video_id)
    if video is None:
        videos[video_id] = Video(video_id, subset, duration, source, events)
    elif video.subset != subset:
        errors.append(error_entry(source, key, f"the video is in {video.source} ({video.subset}) too; "
                                               f"a video belongs to one subset, its {subset} captions are left out"))
    else:
        video.events.extend(events)


def find_feature_files(root: Path) -> dict[str, list[str]]:
    """Feature files under ``root`` by bare video id, as paths relative to ``root``, in order of
    preference (``.npy``, ``.h5``, ``.hdf5``, ``.pkl``, ``.pickle``, legacy ``v_<id>``; ``v_<id>.npy``
    before ``<id>.npy``)."""
    found: dict[str, list[tuple[int, bool, str]]] = {}
    for path in root.rglob("*"):
        rank = _feature_rank(path)
        if rank is not None and path.is_file():
            name = path.relative_to(root).as_posix()
            found.setdefault(bare_id(path.stem), []).append((rank, not path.name.startswith(LEGACY_PREFIX), name))
    return {vid: [name for *_, name in sorted(files)] for vid, files in found.items()}


def _feature_rank(path: Path) -> int | None:
    suffix = path.suffix.lower()
    if suffix in FEATURE_SUFFIXES:
        return FEATURE_SUFFIXES.index(suffix)
    if not suffix and path.name.startswith(LEGACY_PREFIX):
        return len(FEATURE_SUFFIXES)
    return None


def read_features(path: str | os.PathLike, video_id: str) -> np.ndarray:
    """The float32 ``[T, D]`` features in one video's file; :class:`FeatureFileError` saying why not."""
    path = Path(path)
    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            data = _npy(path)
        elif suffix in (".h5", ".hdf5"):
            data = _h5_features(path, video_id)
        else:
            data = _pickled_features(load_legacy_pickle(path, encoding="latin1"), video_id)
    except FeatureFileError:
        raise
    except LegacyPickleError as exc:
        raise FeatureFileError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeatureFileError(f"cannot read: {exc}") from None
    return _as_frames(data)


def _npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)  # a file of another kind: ValueError naming the bytes found
        f.seek(0)
        return np.load(f, allow_pickle=False)


def _h5_features(path: Path, video_id: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        datasets = [name for name in f if isinstance(f[name], h5py.Dataset)]
        for name in ("features", video_id, LEGACY_PREFIX + video_id):
            if name in datasets:
                return f[name][()]
        if len(datasets) == 1:
            return f[datasets[0]][()]
    raise FeatureFileError(f"no dataset 'features' or {video_id!r}, and not exactly one dataset (found {datasets})")


def _pickled_features(data, video_id: str):
    if not isinstance(data, dict):
        return data
    for key in ("features", video_id, LEGACY_PREFIX + video_id):
        for spelled in (key, key.encode()):
            if spelled in data:
                return data[spelled]
    if len(data) == 1:
        return next(iter(data.values()))
    raise FeatureFileError(f"a pickled dict without 'features' or {video_id!r} (keys {list(data)[:3]})")


def _as_frames(data) -> np.ndarray:
    try:
        array = np.asarray(data)
    except ValueError:
        raise FeatureFileError("not an array of numbers") from None
    if array.dtype.kind not in "iuf":
        raise FeatureFileError(f"holds {array.dtype} values, not numbers")
    if array.ndim != 2:
        raise FeatureFileError(f"features of shape {list(array.shape)}; expected [T, D] frames")
    if array.shape[0] == 0:
        raise FeatureFileError("no frames (T = 0)")
    return np.ascontiguousarray(array, dtype=np.float32)


def assign_features(videos: dict[str, Video], files: dict[str, list[str]], captions: str,
                    failed: set[str] = frozenset()) -> tuple[list[Video], list[dict]]:
    """Videos that have a feature file (each given its file), and the error entries: captioned
    videos without one are ``missing``; files of no captioned video, and a video's second file,
    are ``skipped``, except the files of the ``failed`` ids (whose captions entry was unusable)."""
    found, errors = [], []
    for video_id in sorted(videos):
        video = videos[video_id]
        names = files.get(video_id, [])
        if not names:
            errors.append(error_entry(video.source, LEGACY_PREFIX + video_id,
                                      f"missing: no feature file {video_id}.npy / .h5 / .pkl or {LEGACY_PREFIX}{video_id} "
                                      "under --features", "missing"))
            continue
        video.feature = names[0]
        found.append(video)
        errors.extend(error_entry(name, video_id, f"another feature file of the video is used: {names[0]}", "skipped")
                      for name in names[1:])
    for video_id in sorted(set(files) - set(videos) - failed):
        errors.extend(error_entry(name, None, f"no video {video_id} in {captions}", "skipped")
                      for name in files[video_id])
    return found, errors


def feature_dim(root: Path, videos: list[Video], sample: int = WIDTH_SAMPLE) -> int:
    """``D`` of most of the first ``sample`` videos whose features can be read (so one misshapen
    file does not decide it); FeaturesError when none can be read."""
    def probes():
        for video in videos:
            try:
                yield read_features(root / video.feature, video.id).shape[1]
            except FeatureFileError as exc:
                yield f"{video.feature}: {exc.reason}"

    width, first_problem = common_width(probes(), sample)
    if width is None:
        raise FeaturesError(f"--features {root}: no feature file of a captioned video can be read ({first_problem})")
    return width


def convert_anet_captions(
    features: str | os.PathLike,
    captions: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    fps: float = FPS,
    min_count: int = MIN_COUNT,
    videos_per_shard: int = 32,
    fmt: str = "parquet",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> Summary:
    """Convert the videos of ``captions`` that have a feature file under ``features`` into ``out``."""
    root = Path(features).resolve()
    check_readable(root, "--features")
    if not root.is_dir():
        raise FeaturesError(f"--features {root}: not a folder")
    if not captions:
        raise CaptionsError("give at least one --captions file (train.json, val_1.json, val_2.json)")
    files = find_feature_files(root)
    if not files:
        raise FeaturesError(f"--features {root}: no feature files ({', '.join(FEATURE_SUFFIXES)} or legacy "
                            f"{LEGACY_PREFIX}<id> pickles) found")
    videos, listing_errors = read_captions(captions)
    vocabulary = training_vocabulary(videos, captions, min_count)
    failed = {bare_id(str(e["item"])) for e in listing_errors}
    found, unmatched = assign_features(videos, files, ", ".join(Path(p).name for p in captions), failed)
    listing_errors += unmatched
    if not found:
        raise FeaturesError(f"--features {root}: no feature file belongs to a video of the captions files "
                            f"(e.g. {next(iter(files))}; files are named <id>.npy or v_<id>.npy)")
    width = feature_dim(root, found)
    spec = JobSpec(
        kind="anet_captions",
        fmt=fmt,
        columns=anet_captions_columns(width),
        options={"features": str(root), "captions": [str(Path(p).resolve()) for p in captions], "fps": fps,
                 "videos_per_shard": videos_per_shard, "tokenizer": TOKENIZER,
                 "vocabulary": vocabulary.manifest_entry()},
        classes=list(vocabulary.words),
    )
    tasks = []
    for index, start in enumerate(range(0, len(found), videos_per_shard)):
        chunk = found[start : start + videos_per_shard]
        identity = [(v.id, v.feature, *file_identity(root / v.feature)[1:], _events_digest(v)) for v in chunk]
        tasks.append(Task(index, task_key(spec, identity), tuple(v.feature for v in chunk),
                          (str(root), chunk, width, vocabulary)))
    log.info("converting %d videos (%d-d features, vocabulary of %d words) in %d shards",
             len(found), width, len(vocabulary), len(tasks))
    return run_job(spec, tasks, convert_chunk, out, listing_errors=listing_errors,
                   workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)


def training_vocabulary(videos: dict[str, Video], captions: Sequence, min_count: int) -> Vocabulary:
    """The vocabulary of the training videos' captions; CaptionsError when no file is a training one."""
    if not any(captions_subset(p)[0] == "train" for p in captions):
        raise CaptionsError("the vocabulary is built from the training captions: give train.json among --captions")
    return build_vocabulary((e.tokens for v in videos.values() if v.subset == "train" for e in v.events), min_count)


def _events_digest(video: Video) -> str:
    text = json.dumps([video.subset, video.duration, [(e.start, e.end, e.sentence, e.reference) for e in video.events]])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def convert_chunk(payload: tuple[str, list[Video], int, Vocabulary], writer) -> list[dict]:
    """Write one record per video of a chunk; a video whose features cannot be used is one error entry."""
    root, videos, width, vocabulary = payload
    errors = []
    for video in videos:
        try:
            features = read_features(os.path.join(root, video.feature), video.id)
            if features.shape[1] != width:
                raise FeatureFileError(f"features of {features.shape[1]} dimensions; the other videos have {width}")
        except FeatureFileError as exc:
            errors.append(error_entry(video.feature, video.id, exc.reason))
            continue
        writer.write(video_record(video, features, vocabulary))
    return errors


def video_record(video: Video, features: np.ndarray, vocabulary: Vocabulary) -> dict:
    """The cache record of one video (layout in the module docstring)."""
    ids = [vocabulary.encode(e.tokens) for e in video.events]
    return {
        "id": video.id,
        "subset": video.subset,
        "duration": video.duration,
        "num_frames": features.shape[0],
        "features": features,
        "segments": [[e.start, e.end] for e in video.events],
        "reference": [e.reference for e in video.events],
        "sentences": [e.sentence for e in video.events],
        "tokens": [" ".join(e.tokens) for e in video.events],
        "caption_ids": np.array([i for caption in ids for i in caption], dtype=np.int32),
        "caption_lengths": np.array([len(caption) for caption in ids], dtype=np.int32),
    }
