"""``vtk decode kinetics``: video clips to a cache of resized frames, one shard per chunk of clips."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..formats.manifest import error_entry
from ..formats.schema import kinetics_columns
from .ffmpeg import DecodeError, check_options, decode_clip
from .runner import JobSpec, Summary, Task, check_readable, file_identity, run_job, task_key

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
CSV_FIELDS = ("youtube_id", "time_start", "time_end")


class AnnotationError(ValueError):
    """The annotations CSV cannot be used at all (missing columns, unreadable file)."""


@dataclass(frozen=True)
class Clip:
    """One clip to decode: ``source`` relative to ``--src``; ``label`` is -1 when unlabelled."""

    id: str
    source: str
    label: int
    label_name: str


def find_videos(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def clips_from_folders(src: Path, videos: list[Path]) -> tuple[list[Clip], list[str], list[dict]]:
    """Clips labelled by their class folder ``src/<label>/<id>.mp4`` (``videos``: the files under
    ``src``); classes are the sorted folder names."""
    inside = [p for p in videos if len(p.relative_to(src).parts) == 2]
    classes = sorted({p.parent.name for p in inside})
    index = {name: i for i, name in enumerate(classes)}
    clips = [Clip(p.stem, p.relative_to(src).as_posix(), index[p.parent.name], p.parent.name) for p in inside]
    skipped = [error_entry(p.relative_to(src).as_posix(), None, "not directly inside a class folder <src>/<label>/", "skipped")
               for p in videos if len(p.relative_to(src).parts) != 2]
    return clips, classes, skipped


def read_annotations(csv_path: Path) -> tuple[list[dict], list[dict]]:
    """Rows of a Kinetics CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``) as
    ``{"id", "label_name"}``, and one error entry per unusable row."""
    rows, errors = [], []
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            absent = [c for c in CSV_FIELDS if c not in (reader.fieldnames or [])]
            if absent:
                raise AnnotationError(f"{csv_path}: missing column(s) {absent}; expected label,youtube_id,time_start,time_end,split")
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append({"id": _clip_id(row), "label_name": (row.get("label") or "").strip(),
                                 "split": (row.get("split") or "").strip()})
                except ValueError as exc:
                    errors.append(error_entry(csv_path.name, line, f"bad row: {exc}"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{csv_path}: cannot read ({exc})") from exc
    return rows, errors


def _clip_id(row: dict) -> str:
    youtube_id = (row["youtube_id"] or "").strip()
    if not youtube_id:
        raise ValueError("empty youtube_id")
    start, end = (_whole_seconds(row[key], key) for key in ("time_start", "time_end"))
    return f"{youtube_id}_{start:06d}_{end:06d}"


def _whole_seconds(text: str, key: str) -> int:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{key} {text!r} is not a number") from None
    if value != int(value) or value < 0:
        raise ValueError(f"{key} {text!r} is not a whole non-negative number of seconds")
    return int(value)


def clips_from_csv(src: Path, videos: list[Path], csv_path: Path,
                   split: str | None = None) -> tuple[list[Clip], list[str], list[dict]]:
    """Clips listed in the CSV (only the rows of ``split``, when given) and found among ``videos``
    (the files under ``src``) by file name.

    Listed clips with no file are ``missing``; files the CSV does not list at all are ``skipped``;
    both go to errors.jsonl. Classes are the sorted label names of the whole CSV, so every split
    gets the same class indices.
    """
    rows, errors = read_annotations(csv_path)
    classes = sorted({r["label_name"] for r in rows if r["label_name"]})
    other_split = {r["id"] for r in rows if split and r["split"] != split}
    rows = [r for r in rows if r["id"] not in other_split]
    index = {name: i for i, name in enumerate(classes)}
    by_stem: dict[str, list[Path]] = {}
    for path in videos:
        by_stem.setdefault(path.stem, []).append(path)
    clips, listed = [], set()
    for row in rows:
        paths = by_stem.get(row["id"], [])
        if not paths:
            errors.append(error_entry(csv_path.name, row["id"], f"missing: no video file named {row['id']}.* under --src", "missing"))
            continue
        path = next((p for p in paths if p.parent.name == row["label_name"]), paths[0])
        listed.add(path)
        clips.append(Clip(row["id"], path.relative_to(src).as_posix(), index.get(row["label_name"], -1), row["label_name"]))
    for stem, paths in by_stem.items():
        errors.extend(error_entry(p.relative_to(src).as_posix(), None, f"not listed in {csv_path.name}", "skipped")
                      for p in paths if p not in listed and stem not in other_split)
    return clips, classes, errors


def decode_kinetics(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    split: str | None = None,
    fps: float = 25.0,
    short_side: int = 256,
    codec: str = "jpeg",
    quality: int = 3,
    videos_per_shard: int = 64,
    fmt: str = "parquet",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> Summary:
    """Decode every clip under ``src`` (labelled by ``annotations`` or by class folders) into ``out``."""
    src = Path(src).resolve()
    check_readable(src)
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src}: not a folder")
    if split and not annotations:
        raise ValueError("--split selects rows of the --annotations CSV; give the CSV too")
    check_options(fps, short_side, codec, quality)
    videos = find_videos(src)
    if not videos:
        raise ValueError(f"--src {src}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    if annotations:
        clips, classes, listing_errors = clips_from_csv(src, videos, Path(annotations), split)
    else:
        clips, classes, listing_errors = clips_from_folders(src, videos)
    spec = JobSpec(
        kind="kinetics",
        fmt=fmt,
        columns=kinetics_columns(codec),
        options={"src": str(src), "annotations": str(Path(annotations).resolve()) if annotations else None,
                 "split": split,
                 "fps": fps, "short_side": short_side, "codec": codec, "quality": quality,
                 "videos_per_shard": videos_per_shard},
        classes=classes,
    )
    clips.sort(key=_mixing_key)
    decode = {"fps": fps, "short_side": short_side, "codec": codec, "quality": quality}
    tasks = []
    for index, start in enumerate(range(0, len(clips), videos_per_shard)):
        chunk = clips[start : start + videos_per_shard]
        identity = [(c.id, c.source, c.label, *file_identity(src / c.source)[1:]) for c in chunk]
        tasks.append(Task(index, task_key(spec, identity), tuple(c.source for c in chunk), (str(src), chunk, decode)))
    log.info("decoding %d clips of %d classes in %d shards", len(clips), len(classes), len(tasks))
    return run_job(spec, tasks, decode_chunk, out, listing_errors=listing_errors,
                   workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress)


def _mixing_key(clip: Clip) -> str:
    """A fixed pseudo-random order: shards then mix the classes (folders and CSVs list clips class
    by class), so a training shuffle buffer of a few clips already gives mixed batches."""
    return hashlib.sha1(clip.source.encode("utf-8")).hexdigest()


def decode_chunk(payload: tuple[str, list[Clip], dict], writer) -> list[dict]:
    """Decode each clip of a chunk into ``writer``; a clip that fails is one error entry."""
    src, chunk, options = payload
    errors = []
    for clip in chunk:
        try:
            decoded = decode_clip(os.path.join(src, clip.source), **options)
        except DecodeError as exc:
            errors.append(error_entry(clip.source, clip.id, exc.reason))
            continue
        writer.write({"id": clip.id, "label": clip.label, "label_name": clip.label_name, **decoded})
    return errors
