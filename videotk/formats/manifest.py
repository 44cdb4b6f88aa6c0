"""The cache's two index files: ``manifest.json`` (written last, atomically) and ``errors.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .schema import SCHEMA_VERSION, columns_from_json

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
SHARDS = "shards"

#: statuses of an errors.jsonl line; only "failed" makes a conversion exit non-zero
STATUSES = ("failed", "missing", "skipped")

#: what a manifest holds besides its shards, with the types its values must have
_MANIFEST_KEYS = {"kind": str, "format": str, "columns": list, "shards": list}
_SHARD_KEYS = {"file": str, "rows": int, "bytes": int, "sha256": str}


class CacheError(Exception):
    """A cache folder that cannot be read (or written) as a videotk cache."""


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(cache_dir: str | os.PathLike, manifest: dict) -> Path:
    path = Path(cache_dir) / MANIFEST
    write_atomic(path, json.dumps({"schema_version": SCHEMA_VERSION, **manifest}, indent=2) + "\n")
    return path


def read_manifest(cache_dir: str | os.PathLike) -> dict:
    """The manifest of the cache ``cache_dir``; :class:`CacheError` naming the file when there is
    none, or it is not valid JSON, or of another schema version, or lacks a key."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        unfinished = (Path(cache_dir) / SHARDS).is_dir()
        hint = " (the conversion did not finish: run the same command again to resume)" if unfinished else ""
        raise CacheError(f"{cache_dir}: not a videotk cache, no {MANIFEST}{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path}: cannot be read as JSON ({exc}); convert again to rebuild the cache") from exc
    if not isinstance(manifest, dict):
        raise CacheError(f"{path}: not a JSON object; convert again to rebuild the cache")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CacheError(
            f"{path}: schema version {manifest.get('schema_version')!r}, this videotk reads {SCHEMA_VERSION}"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise CacheError(f"{path}: {problem}; convert again to rebuild the cache")
    return manifest


def _manifest_problem(manifest: dict) -> str | None:
    problem = _keys_problem(manifest, _MANIFEST_KEYS, "")
    if problem:
        return problem
    try:
        columns_from_json(manifest["columns"])
    except (TypeError, KeyError, ValueError) as exc:
        return f"bad columns ({exc})"
    for index, shard in enumerate(manifest["shards"]):
        if not isinstance(shard, dict):
            return f"shards[{index}] is not an object"
        problem = _keys_problem(shard, _SHARD_KEYS, f"shards[{index}].")
        if problem:
            return problem
        if Path(shard["file"]).name != shard["file"] or shard["file"] in ("", ".", ".."):
            return f"shards[{index}].file {shard['file']!r} is not a file name inside {SHARDS}/"
    return None


def _keys_problem(data: dict, keys: dict[str, type], prefix: str) -> str | None:
    for key, type_ in keys.items():
        if key not in data:
            return f"no key '{prefix}{key}'"
        if not isinstance(data[key], type_) or isinstance(data[key], bool):
            return f"{prefix}{key} is {type(data[key]).__name__}, not {type_.__name__}"
    return None


def error_entry(source: str, item, reason: str, status: str = "failed") -> dict:
    """One line of errors.jsonl: which input (``source``), which record in it (``item``), and why."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    return {"source": source, "item": item, "reason": reason, "status": status}


def write_errors(cache_dir: str | os.PathLike, entries: Iterable[dict]) -> Path:
    path = Path(cache_dir) / ERRORS
    write_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    return path


def read_errors(cache_dir: str | os.PathLike) -> list[dict]:
    """The lines of ``errors.jsonl`` (none when there is no such file); CacheError naming a bad line."""
    path = Path(cache_dir) / ERRORS
    if not path.is_file():
        return []
    entries = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CacheError(f"{path}: line {number} is not valid JSON ({exc})") from exc
    return entries
