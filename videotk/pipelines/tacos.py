"""``vtk convert tacos``: TACoS sliding-window features and sentence annotations to a cache of one
record per movie, for sentence grounding (TALL / CTRL).

Inputs:

- a folder of window features, one ``.npy`` per sliding window, ``[D]`` (or ``[1, D]``) float,
  named ``<movie>.avi_<start>_<end>.npy`` (frames), e.g. the C3D fc6 folders
  ``Interval64_128_256_512_overlap0.8_c3d_fc6/`` (train) or ``Interval128_256_overlap0.8_c3d_fc6/``
  (test);
- the sentence annotations of one subset, in either layout:

  - legacy: ``<subset>_clip-sentvec.pkl``, a pickled list of ``(clip_name, [vector, ...])`` with
    ``clip_name`` such as ``s13-d21.avi_252_452`` (the movie and the sentence's frame span) and
    one skip-thought vector ``[E]`` (4800) per sentence of that clip; no text. Read by
    :func:`~videotk.pipelines.legacy_pickle.load_legacy_pickle`. Frame counts come from
    ``--frame-counts`` (default: ``video_allframes_info.pkl`` beside the annotations, when there),
    a pickled ``{movie: frames}``.
  - plain JSON (what ``vtk synth tacos`` writes)::

        {"dataset": "tacos", "version": 1, "subset": "train", "vectors": "train_sentvec.npy",
         "movies": {"s13-d21": {"num_frames": 3000,
                                "sentences": [{"span": [252, 452], "vector": 0, "text": "..."}]}}}

    ``vectors`` is an ``.npy`` file beside the JSON, float ``[S_total, E]``; each sentence names
    its row. ``text`` may be absent.

Record (columns in :func:`videotk.formats.schema.tacos_columns`), per movie with W windows and S
sentences: ``id`` (the movie, without ``.avi``), ``subset``, ``num_frames`` (-1 when unknown),
``windows`` int32 ``[W, 2]`` (start, end frames, sorted), ``window_features`` float32 ``[W, D]``
(row i is the window of ``windows[i]``), ``sentence_spans`` int32 ``[S, 2]`` (start, end frames of
the ground-truth clip), ``sentence_vectors`` float32 ``[S, E]`` and ``sentences`` ``[S]`` (text,
``""`` when unknown), sentences in file order. Training pairs (windows of IoU > 0.5 and nIoL <
0.15 with a sentence's span) and context windows are made from these at read time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats.manifest import error_entry
from ..formats.schema import tacos_columns
from .legacy_pickle import LegacyPickleError, load_legacy_pickle
from .runner import JobSpec, Summary, Task, UnreadableSource, check_readable, common_width, run_job, task_key

log = logging.getLogger(__name__)

FRAME_COUNTS = "video_allframes_info.pkl"
UNKNOWN_FRAMES = -1
WIDTH_SAMPLE = 5
_CLIP = r"(?P<movie>.+?)(?:\.avi)?_(?P<start>\d+)_(?P<end>\d+)"
CLIP_NAME = re.compile(_CLIP)
WINDOW_FILE = re.compile(_CLIP + r"\.npy")
_SUBSET = re.compile(r"(train|val|test)(?=$|[_\-.])", re.IGNORECASE)


class AnnotationError(ValueError):
    """The sentence annotations (or frame counts) cannot be used at all."""


class FeaturesError(ValueError):
    """``--features`` names no window feature files."""


@dataclass(frozen=True)
class Window:
    """One sliding window: its frame span ``(start, end)`` and its file, relative to ``--features``."""

    start: int
    end: int
    file: str


@dataclass
class Movie:
    """One movie's sentences: spans ``[S, 2]`` int32, vectors ``[S, E]`` float32, texts ``[S]``."""

    id: str
    num_frames: int
    spans: np.ndarray
    vectors: np.ndarray
    texts: list[str]
    windows: tuple[Window, ...] = ()


def find_windows(root: Path) -> tuple[dict[str, list[Window]], list[dict]]:
    """Window files directly in ``root`` by movie id, sorted by span; ``.npy`` files named otherwise
    are ``skipped`` entries."""
    windows: dict[str, list[Window]] = {}
    errors = []
    for name in sorted(os.listdir(root)):
        if not name.endswith(".npy"):
            continue
        found = WINDOW_FILE.fullmatch(name)
        if not found:
            errors.append(error_entry(name, None, "not named <movie>.avi_<start>_<end>.npy", "skipped"))
            continue
        window = Window(int(found["start"]), int(found["end"]), name)
        windows.setdefault(found["movie"], []).append(window)
    return {movie: sorted(found, key=lambda w: (w.start, w.end)) for movie, found in windows.items()}, errors


def annotations_subset(path: Path) -> str:
    """The subset a legacy annotations file names: ``train_clip-sentvec.pkl`` -> ``train``."""
    found = _SUBSET.match(path.name)
    if not found:
        raise AnnotationError(f"--annotations {path}: cannot tell its subset from the name; name it "
                              "train_clip-sentvec.pkl or test_clip-sentvec.pkl")
    return found.group(1).lower()


def read_annotations(path: Path, frame_counts: Path | None) -> tuple[str, dict[str, Movie], list[dict]]:
    """``(subset, movies, errors)`` of an annotations file of either layout."""
    check_readable(path, "--annotations")
    if not path.is_file():
        raise AnnotationError(f"--annotations {path}: no such file")
    if path.suffix.lower() == ".json":
        return read_json_annotations(path)
    counts = read_frame_counts(frame_counts) if frame_counts else {}
    movies, errors = read_legacy_annotations(path, counts)
    return annotations_subset(path), movies, errors


def read_json_annotations(path: Path) -> tuple[str, dict[str, Movie], list[dict]]:
    """The plain layout (module docstring); one error entry per unusable movie."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"--annotations {path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("movies"), dict) or not isinstance(data.get("vectors"), str):
        raise AnnotationError(f'--annotations {path}: not TACoS annotations: expected {{"subset", "vectors": '
                              f'"<file>.npy", "movies": {{...}}}} (or a legacy *_clip-sentvec.pkl)')
    subset = data.get("subset") or annotations_subset(path)
    vectors = _vector_table(path.parent / data["vectors"])
    movies, errors = {}, []
    for key, entry in data["movies"].items():
        movie_id = key.removesuffix(".avi")
        try:
            movies[movie_id] = _json_movie(movie_id, entry, vectors)
        except (ValueError, TypeError, KeyError) as exc:
            errors.append(error_entry(path.name, key, f"bad entry: {exc}"))
    return str(subset), movies, errors


def _vector_table(path: Path) -> np.ndarray:
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"{path}: the annotations' sentence vectors cannot be read ({exc})") from None
    if table.ndim != 2 or table.dtype.kind != "f":
        raise AnnotationError(f"{path}: sentence vectors must be a float [S, E] array, not {table.dtype} "
                              f"{list(table.shape)}")
    return table


def _json_movie(movie_id: str, entry: dict, vectors: np.ndarray) -> Movie:
    sentences = entry["sentences"]
    num_frames = entry.get("num_frames", UNKNOWN_FRAMES)
    if not isinstance(num_frames, int) or isinstance(num_frames, bool):
        raise ValueError(f"num_frames {num_frames!r} is not a whole number")
    rows, spans = [], []
    for k, sentence in enumerate(sentences):
        spans.append(_span(sentence["span"], f"sentences[{k}].span"))
        row = sentence["vector"]
        if not isinstance(row, int) or not 0 <= row < len(vectors):
            raise ValueError(f"sentences[{k}].vector {row!r} is not a row of the {len(vectors)} vectors")
        rows.append(row)
    texts = [str(s.get("text", "")) for s in sentences]
    return Movie(movie_id, num_frames, _spans(spans), np.asarray(vectors[rows], dtype=np.float32), texts)


def _span(value, what: str) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{what} {value!r} is not a [start, end] pair of frames")
    start, end = int(value[0]), int(value[1])
    if not 0 <= start < end:
        raise ValueError(f"{what} {value!r}: frames must satisfy 0 <= start < end")
    return start, end


def _spans(spans: list[tuple[int, int]]) -> np.ndarray:
    return np.array(spans, dtype=np.int32).reshape(len(spans), 2)


def read_legacy_annotations(path: Path, frame_counts: dict[str, int]) -> tuple[dict[str, Movie], list[dict]]:
    """Movies of a ``*_clip-sentvec.pkl``: one sentence per vector, in file order."""
    items = _legacy_object(path, "list of (clip name, [sentence vectors])")
    if not isinstance(items, (list, tuple)):
        raise AnnotationError(f"--annotations {path}: not a TACoS clip-sentvec pickle: expected a list of "
                              f"(clip name, [sentence vectors]), found a {type(items).__name__}")
    sentences: dict[str, list[tuple[tuple[int, int], np.ndarray]]] = {}
    errors, width = [], None
    for index, item in enumerate(items):
        try:
            movie_id, span, vectors = _legacy_item(item, width)
        except ValueError as exc:
            errors.append(error_entry(path.name, index, f"bad entry: {exc}"))
            continue
        width = vectors.shape[1]
        sentences.setdefault(movie_id, []).extend((span, v) for v in vectors)
    if items and not sentences:
        raise AnnotationError(f"--annotations {path}: not a TACoS clip-sentvec pickle: no entry is a "
                              f"(clip name, [sentence vectors]) pair ({errors[0]['reason']})")
    movies = {movie_id: Movie(movie_id, frame_counts.get(movie_id, UNKNOWN_FRAMES), _spans([s for s, _ in found]),
                              np.stack([v for _, v in found]), [""] * len(found))
              for movie_id, found in sentences.items()}
    return movies, errors


def _legacy_item(item, width: int | None) -> tuple[str, tuple[int, int], np.ndarray]:
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise ValueError("not a (clip name, [sentence vectors]) pair")
    name, vectors = item
    name = name.decode("latin-1") if isinstance(name, bytes) else name
    found = CLIP_NAME.fullmatch(name) if isinstance(name, str) else None
    if not found:
        raise ValueError(f"clip name {name!r} is not <movie>.avi_<start>_<end>")
    span = _span([int(found["start"]), int(found["end"])], f"clip {name}")
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError):
        raise ValueError(f"clip {name}: the sentence vectors are not numbers") from None
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[0] == 0 or (width is not None and array.shape[1] != width):
        want = f"[E] vectors of E = {width}" if width else "[E] vectors"
        raise ValueError(f"clip {name}: sentence vectors of shape {list(np.shape(vectors))}; expected {want}")
    return found["movie"], span, array


def read_frame_counts(path: Path) -> dict[str, int]:
    """``{movie: frames}`` of a ``video_allframes_info.pkl`` (movie names with or without ``.avi``)."""
    data = _legacy_object(path, "dict of movie -> frame count", option="--frame-counts")
    if not isinstance(data, dict):
        raise AnnotationError(f"--frame-counts {path}: expected a pickled dict of movie -> frame count, "
                              f"found a {type(data).__name__}")
    counts = {}
    for movie, frames in data.items():
        movie = movie.decode("latin-1") if isinstance(movie, bytes) else str(movie)
        try:
            counts[movie.removesuffix(".avi")] = int(frames)
        except (TypeError, ValueError):
            raise AnnotationError(f"--frame-counts {path}: movie {movie!r} has frame count {frames!r}") from None
    return counts


def _legacy_object(path: Path, expected: str, option: str = "--annotations"):
    try:
        check_readable(path, option)
        return load_legacy_pickle(path, encoding="latin1")
    except UnreadableSource as exc:
        raise AnnotationError(str(exc)) from None
    except FileNotFoundError:
        raise AnnotationError(f"{option} {path}: no such file") from None
    except LegacyPickleError as exc:
        raise AnnotationError(f"{option} {path}: expected a pickled {expected}: {exc}") from None
    except OSError as exc:
        raise AnnotationError(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None


def match_windows(movies: dict[str, Movie], windows: dict[str, list[Window]], source: str,
                  failed: set[str] = frozenset()) -> tuple[list[Movie], list[dict]]:
    """Annotated movies with their windows; annotated movies without windows are ``missing``,
    windows of movies that are not annotated ``skipped`` (one entry per movie), except those of the
    ``failed`` movies (whose annotations were unusable)."""
    found, errors = [], []
    for movie_id in sorted(movies):
        movie = movies[movie_id]
        if movie_id not in windows:
            errors.append(error_entry(source, movie_id, f"missing: no window files {movie_id}.avi_<start>_<end>.npy "
                                                        "under --features", "missing"))
            continue
        movie.windows = tuple(windows[movie_id])
        found.append(movie)
    for movie_id in sorted(set(windows) - set(movies) - failed):
        errors.append(error_entry(f"{movie_id}.avi_*.npy", movie_id,
                                  f"{len(windows[movie_id])} window files of a movie not in {source}", "skipped"))
    return found, errors


def read_window(path: str | os.PathLike) -> np.ndarray:
    """The float32 ``[D]`` feature of one window file; ValueError or OSError saying why not."""
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)  # a file of another kind: ValueError naming the bytes found
        f.seek(0)
        array = np.load(f, allow_pickle=False)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise ValueError(f"a {array.dtype} array of shape {list(array.shape)}; expected a [D] feature")
    return array.astype(np.float32, copy=False)


def window_dim(root: Path, movies: list[Movie], sample: int = WIDTH_SAMPLE) -> int:
    """``D`` of most of the first readable window files of up to ``sample`` movies (so one
    misshapen file does not decide it); FeaturesError when none can be read."""
    def probes():
        for movie in movies:
            for window in movie.windows:
                try:
                    yield read_window(root / window.file).shape[0]
                    break  # one readable window per movie
                except (OSError, ValueError) as exc:
                    yield f"{window.file}: {exc}"

    width, first_problem = common_width(probes(), sample)
    if width is None:
        raise FeaturesError(f"--features {root}: no window file of an annotated movie can be read ({first_problem})")
    return width


def convert_tacos(
    features: str | os.PathLike,
    annotations: str | os.PathLike,
    out: str | os.PathLike,
    *,
    frame_counts: str | os.PathLike | None = None,
    movies_per_shard: int = 8,
    fmt: str = "parquet",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> Summary:
    """Convert the annotated movies of ``annotations`` whose windows are in ``features`` into ``out``."""
    root, annotations = Path(features).resolve(), Path(annotations).resolve()
    check_readable(root, "--features")
    if not root.is_dir():
        raise FeaturesError(f"--features {root}: not a folder")
    windows, listing_errors = find_windows(root)
    if not windows:
        raise FeaturesError(f"--features {root}: no window feature files <movie>.avi_<start>_<end>.npy found")
    counts_file = _frame_counts_file(annotations, frame_counts)
    subset, movies, errors = read_annotations(annotations, counts_file)
    failed = {str(e["item"]).removesuffix(".avi") for e in errors}
    found, unmatched = match_windows(movies, windows, annotations.name, failed)
    listing_errors += errors + unmatched
    if not found:
        raise FeaturesError(f"--features {root}: no window file belongs to a movie of {annotations.name} "
                            f"(window movies: {', '.join(sorted(windows)[:3])})")
    width = window_dim(root, found)
    spec = JobSpec(
        kind="tacos",
        fmt=fmt,
        columns=tacos_columns(width, found[0].vectors.shape[1]),
        options={"features": str(root), "annotations": str(annotations), "subset": subset,
                 "frame_counts": str(counts_file) if counts_file else None, "movies_per_shard": movies_per_shard},
    )
    tasks = []
    for index, start in enumerate(range(0, len(found), movies_per_shard)):
        chunk = found[start : start + movies_per_shard]
        identity = [_movie_identity(root, movie) for movie in chunk]
        tasks.append(Task(index, task_key(spec, identity), tuple(f"{m.id}.avi_*.npy" for m in chunk),
                          (str(root), subset, chunk, width)))
    log.info("converting %d %s movies (%d-d windows) in %d shards", len(found), subset, width, len(tasks))
    return run_job(spec, tasks, convert_chunk, out, listing_errors=listing_errors,
                   workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)


def _frame_counts_file(annotations: Path, given: str | os.PathLike | None) -> Path | None:
    if given is not None:
        return Path(given).resolve()
    beside = annotations.parent / FRAME_COUNTS
    return beside if annotations.suffix.lower() != ".json" and beside.is_file() else None


def _movie_identity(root: Path, movie: Movie) -> tuple:
    digest = hashlib.sha256()
    for window in movie.windows:
        stat = os.stat(root / window.file)
        digest.update(f"{window.file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(movie.spans.tobytes() + np.ascontiguousarray(movie.vectors).tobytes())
    digest.update(json.dumps(movie.texts).encode("utf-8"))
    return movie.id, movie.num_frames, digest.hexdigest()[:16]


class _WindowError(ValueError):
    """One window file of a movie cannot be used; ``reason`` says why."""

    def __init__(self, file: str, reason: str):
        super().__init__(reason)
        self.file, self.reason = file, reason


def convert_chunk(payload: tuple[str, str, list[Movie], int], writer) -> list[dict]:
    """Write one record per movie of a chunk; a movie with a window that cannot be read is one error
    entry (naming that window) and is left out whole."""
    root, subset, movies, width = payload
    errors = []
    for movie in movies:
        try:
            features = np.stack([_window(root, w, width) for w in movie.windows])
        except _WindowError as exc:
            errors.append(error_entry(exc.file, movie.id, exc.reason))
            continue
        writer.write(movie_record(movie, subset, features))
    return errors


def _window(root: str, window: Window, width: int) -> np.ndarray:
    try:
        feature = read_window(os.path.join(root, window.file))
    except (OSError, ValueError) as exc:
        raise _WindowError(window.file, f"cannot read the window: {exc}") from None
    if feature.shape[0] != width:
        raise _WindowError(window.file, f"a window feature of {feature.shape[0]} dimensions; the others have {width}")
    return feature


def movie_record(movie: Movie, subset: str, features: np.ndarray) -> dict:
    """The cache record of one movie (layout in the module docstring)."""
    return {
        "id": movie.id,
        "subset": subset,
        "num_frames": movie.num_frames,
        "windows": np.array([(w.start, w.end) for w in movie.windows], dtype=np.int32).reshape(-1, 2),
        "window_features": features,
        "sentence_spans": movie.spans,
        "sentence_vectors": np.ascontiguousarray(movie.vectors, dtype=np.float32),
        "sentences": movie.texts,
    }
