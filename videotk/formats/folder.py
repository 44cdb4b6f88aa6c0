"""The write side of a cache folder: whether a job may write into it, clearing what a cache
wrote, and committing its index files (``errors.jsonl``, then ``manifest.json``).

A job is known by its fingerprint: ``{"kind", "format", "columns", "options"}``, as the manifest
stores them. The rules for an output folder:

- absent or empty: the job writes a new cache there;
- holding a cache of the same fingerprint (its manifest, or the journal of an unfinished run):
  the job resumes it;
- holding a cache of another fingerprint: refused, unless ``overwrite``; then exactly what that
  cache wrote is removed (its manifest, errors log, the shards its manifest or journal names,
  half-written shards) and every other file, in the folder or in ``shards/``, is kept;
- anything else (a non-empty folder with no cache, a file, a cache whose manifest cannot be read
  and that has no journal): refused, even with ``overwrite``; nothing is touched.

Nothing here writes the journal: the runner keeps it in ``JOURNAL`` and tells these functions
which shards it names.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

from .base import TMP_MARK
from .manifest import ERRORS, MANIFEST, SHARDS, STATUSES, CacheError, read_manifest, write_errors, write_manifest
from .shard import SHARD_FILE

log = logging.getLogger(__name__)

JOURNAL = ".journal"
FINGERPRINT = ("kind", "format", "columns", "options")
NEW, RESUME, REPLACE = "new", "resume", "replace"

_TEMPORARY = re.compile(rf"(?:{SHARD_FILE.pattern}|\.{re.escape(MANIFEST)}|\.{re.escape(ERRORS)}){re.escape(TMP_MARK)}\d+")
_LISTED = 3


class FolderError(CacheError):
    """An output folder a job may not write into (or only with ``overwrite``)."""


def plan_folder(root: str | os.PathLike, fingerprint: dict, *, journaled: dict | None, overwrite: bool) -> str:
    """How a job of ``fingerprint`` may use the folder ``root``: ``NEW``, ``RESUME`` or ``REPLACE``.

    ``journaled`` is the fingerprint the runner's journal holds, if any. Reads only; raises
    :class:`FolderError` (one line, saying what to do) when the job may not write there.
    """
    root = Path(root)
    if not root.exists():
        return NEW
    if not root.is_dir():
        raise FolderError(f"{root} exists and is not a folder; choose another --out")
    previous = [fp for fp in (journaled, _manifest_fingerprint(root, journaled is not None)) if fp is not None]
    if not previous:
        found = _foreign_entries(root)
        if found:
            raise FolderError(f"{root} is not empty and holds no videotk cache ({_listing(found)}); nothing was "
                              "changed: choose another --out, or empty the folder yourself (--overwrite only "
                              "replaces a videotk cache)")
        return NEW
    if all(fp == fingerprint for fp in previous):
        return RESUME
    if not overwrite:
        changed = fingerprint_difference(next(fp for fp in previous if fp != fingerprint), fingerprint)
        raise FolderError(f"{root} holds a videotk cache made with other options ({changed}); choose another "
                          "--out, or pass --overwrite to replace it (files it did not write are kept)")
    return REPLACE


def fingerprint_difference(previous: dict, current: dict) -> str:
    """What differs between two job fingerprints, e.g. ``"format: 'parquet' -> 'hdf5', fps: 25.0 -> 10.0"``
    (only the kind when that differs: the options of another kind of cache differ anyway)."""
    if previous.get("kind") != current.get("kind"):
        return f"kind: {previous.get('kind')!r} -> {current.get('kind')!r}"
    old = {"format": previous.get("format"), **(previous.get("options") or {})}
    new = {"format": current.get("format"), **(current.get("options") or {})}
    keys = sorted(old.keys() | new.keys(), key=lambda k: (k != "format", k))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return ", ".join(changed) or "columns differ"


def _manifest_fingerprint(root: Path, journaled: bool) -> dict | None:
    """The fingerprint of the manifest in ``root``, None without one. An unreadable manifest is
    refused unless a journal says what the folder's cache wrote."""
    if not (root / MANIFEST).exists():
        return None
    try:
        manifest = read_manifest(root)
    except CacheError as exc:
        if journaled:
            return None
        raise FolderError(f"{exc}; which files that cache wrote is unknown, so nothing was changed: choose "
                          f"another --out, or remove {root} yourself") from None
    return {key: manifest.get(key) for key in FINGERPRINT}


def _foreign_entries(root: Path) -> list[str]:
    """What ``root`` holds besides empty cache folders, e.g. ``["notes.txt", "raw/"]``."""
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise FolderError(f"{root}: cannot be listed ({exc.strerror or exc}); choose another --out") from None
    return [p.name + ("/" if p.is_dir() else "") for p in entries
            if not (p.name in (SHARDS, JOURNAL) and p.is_dir() and not any(p.iterdir()))]


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return "found " + ", ".join(names[:_LISTED]) + more


def clear_cache(root: str | os.PathLike, written: Iterable[str] = ()) -> list[str]:
    """Remove what the cache in ``root`` wrote: its manifest (first, so the folder stops being a
    finished cache), errors log, the shards its manifest or ``written`` names, and half-written
    shards. Every other file stays. Returns the names removed (relative to ``root``)."""
    root = Path(root)
    shards = _manifest_shards(root) | set(written)
    removed = [name for name in (MANIFEST, ERRORS) if _unlink(root / name)]
    removed += [f"{SHARDS}/{name}" for name in sorted(shards) if _is_name(name) and _unlink(root / SHARDS / name)]
    removed += remove_stale_temporaries(root)
    log.info("cleared %d files of the previous cache in %s", len(removed), root)
    return removed


def remove_stale_temporaries(root: str | os.PathLike) -> list[str]:
    """Delete half-written shards and index files left by an interrupted run; returns their names."""
    root = Path(root)
    candidates = [*(root / SHARDS).glob(f"*{TMP_MARK}*"), *root.glob(f".*{TMP_MARK}*")]
    removed = [p for p in candidates if _TEMPORARY.fullmatch(p.name) and p.is_file()]
    for path in removed:
        path.unlink()
        log.info("removed half-written %s from an interrupted run", path.name)
    return [p.relative_to(root).as_posix() for p in removed]


def build_manifest(fingerprint: dict, *, classes: list[str] | None, shards: list[dict], errors: list[dict],
                   inputs: int) -> dict:
    """The manifest of a finished job: its fingerprint, class names, summary and ``shards``
    (``{file, rows, bytes, sha256, sources}`` each, in order)."""
    summary = {
        "records": sum(s["rows"] for s in shards),
        "shards": len(shards),
        "bytes": sum(s["bytes"] for s in shards),
        "inputs": inputs,
        **{status: sum(e["status"] == status for e in errors) for status in STATUSES},
    }
    return {**{key: fingerprint[key] for key in FINGERPRINT}, "classes": classes, "summary": summary, "shards": shards}


def commit_cache(root: str | os.PathLike, manifest: dict, errors: list[dict], *, written: Iterable[str] = ()) -> list[str]:
    """Make ``root`` the finished cache ``manifest``: shards that the previous manifest or
    ``written`` names and ``manifest`` does not are removed, then ``errors.jsonl`` and last
    ``manifest.json`` are written. Returns the shards removed."""
    root = Path(root)
    keep = {s["file"] for s in manifest["shards"]}
    obsolete = sorted(name for name in (_manifest_shards(root) | set(written)) - keep if _is_name(name))
    _unlink(root / MANIFEST)
    for name in obsolete:
        if _unlink(root / SHARDS / name):
            log.info("removed %s: no task of this job wrote it", name)
    write_errors(root, errors)
    write_manifest(root, manifest)
    return obsolete


def _manifest_shards(root: Path) -> set[str]:
    """The shards the manifest in ``root`` names; none when it has no readable manifest."""
    try:
        return {s["file"] for s in read_manifest(root)["shards"]} if (root / MANIFEST).is_file() else set()
    except CacheError:
        return set()


def _is_name(name: str) -> bool:
    return bool(name) and Path(name).name == name and name not in (".", "..")


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
