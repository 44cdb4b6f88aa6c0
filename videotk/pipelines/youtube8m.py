"""``vtk convert youtube8m``: YouTube-8M tfrecords to a cache, one shard per input file."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import numpy as np

from ..formats.manifest import error_entry
from ..formats.schema import youtube8m_columns
from .runner import JobSpec, Summary, Task, check_readable, file_identity, run_job, task_key
from .tfrecord import SourceError, iter_records
from .youtube8m_records import SEGMENT_KEYS, RecordError, detect_level, parse_record

log = logging.getLogger(__name__)

_SEGMENT_DTYPES = {"segment_scores": np.float32}


class SourceSelectionError(ValueError):
    """``--src`` names nothing convertible."""


def find_tfrecords(src: str | os.PathLike) -> tuple[Path, list[Path]]:
    """``(root, files)``: the tfrecords a ``--src`` names (a folder, a glob pattern or one file), sorted.

    ``root`` is what source names in the manifest and errors log are relative to.
    """
    src = os.fspath(src)
    if not glob.has_magic(src):
        check_readable(Path(src))
    if os.path.isdir(src):
        root, files = Path(src), sorted(p for p in Path(src).rglob("*.tfrecord") if p.is_file())
    elif glob.has_magic(src):
        files = sorted(Path(p) for p in glob.glob(src, recursive=True) if os.path.isfile(p))
        root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
    elif os.path.isfile(src):
        root, files = Path(src).parent, [Path(src)]
    else:
        raise SourceSelectionError(f"--src {src}: no such file, folder or glob match")
    if not files:
        raise SourceSelectionError(f"--src {src}: no .tfrecord files found")
    return root, files


def detect_layout(files: list[Path]) -> tuple[str, bool]:
    """``(level, segments)`` from the first readable record of each file.

    The level is the first file's; files of the other level then fail record by record with a
    message naming the mismatch. Segment columns are kept when any file carries them.
    """
    levels, segments = [], False
    for path in files:
        first = _first_record(path)
        if first is None:
            continue
        try:
            levels.append(detect_level(first))
            segments = segments or _has_segments(first, levels[-1])
        except RecordError:
            continue
    if not levels:
        raise SourceSelectionError("no readable YouTube-8M record in any input file; pass --level to convert anyway")
    return levels[0], segments


def _first_record(path: Path) -> bytes | None:
    try:
        return next(iter_records(path), None)
    except (SourceError, OSError):
        return None


def _has_segments(data: bytes, level: str) -> bool:
    return level == "frame" and "segment_labels" in parse_record(data, level)


def convert_youtube8m(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    level: str = "auto",
    segments: bool | None = None,
    fmt: str = "parquet",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> Summary:
    """Convert every tfrecord under ``src`` into the cache ``out`` (see README, "Column contract")."""
    root, files = find_tfrecords(src)
    if level == "auto" or segments is None:
        found_level, found_segments = detect_layout(files)
        level = found_level if level == "auto" else level
        segments = found_segments if segments is None else segments
    columns = youtube8m_columns(level, segments=segments)
    spec = JobSpec(
        kind=f"youtube8m-{level}",
        fmt=fmt,
        columns=columns,
        options={"src": str(Path(src).resolve()), "level": level, "segments": segments},
    )
    tasks = []
    for index, path in enumerate(files):
        name = path.relative_to(root).as_posix()
        tasks.append(Task(index, task_key(spec, [name, *file_identity(path)[1:]]), (name,), (str(path), name, level, segments)))
    log.info("converting %d tfrecord files (%s-level%s)", len(files), level, ", with segments" if segments else "")
    return run_job(spec, tasks, convert_file, out, workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)


def convert_file(payload: tuple[str, str, str, bool], writer) -> list[dict]:
    """Write every good record of one tfrecord to ``writer``; return one error entry per bad record.

    A record whose data fails its CRC is one error and reading goes on; a damaged length field or
    a truncation ends the file there (its earlier records are kept) with one error.
    """
    path, name, level, segments = payload
    errors: list[dict] = []
    seen = 0  # records met so far, good or damaged: the index of the next one

    def skip(error: SourceError) -> None:
        nonlocal seen
        seen += 1
        errors.append(error_entry(name, error.item, error.reason))

    try:
        for data in iter_records(path, on_bad_data=skip):
            index, seen = seen, seen + 1
            try:
                writer.write(_fit(parse_record(data, level), segments))
            except (RecordError, ValueError) as exc:
                errors.append(error_entry(name, index, getattr(exc, "reason", str(exc))))
    except SourceError as exc:
        errors.append(error_entry(name, exc.item, exc.reason))
    except OSError as exc:
        errors.append(error_entry(name, None, f"cannot read: {exc.strerror or exc}"))
    if seen == 0 and not errors:
        errors.append(error_entry(name, None, "empty file: no records"))
    return errors


def _fit(record: dict, segments: bool) -> dict:
    """A frame-level record shaped to the cache's columns: absent segment fields become empty lists."""
    if not segments or "rgb" not in record:
        if any(key in record for key in SEGMENT_KEYS):
            raise RecordError("record has 2019 segment fields but the cache has no segment columns; pass --segments")
        return record
    for key in SEGMENT_KEYS:
        record.setdefault(key, np.zeros(0, dtype=_SEGMENT_DTYPES.get(key, np.int32)))
    return record
