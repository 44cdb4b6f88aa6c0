"""The cache's two index files: ``manifest.json`` (written last, atomically) and ``errors.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .schema import SCHEMA_VERSION

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
SHARDS = "shards"

#: statuses of an errors.jsonl line; only "failed" makes a conversion exit non-zero
STATUSES = ("failed", "missing", "skipped")


class CacheError(Exception):
    """A cache folder that cannot be read as a videotk cache."""


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
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        hint = " (the conversion did not finish: run the same command again to resume)" if (Path(cache_dir) / SHARDS).is_dir() else ""
        raise CacheError(f"{cache_dir}: not a videotk cache, no {MANIFEST}{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CacheError(f"{path}: invalid JSON ({exc})") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CacheError(
            f"{path}: schema version {manifest.get('schema_version')!r}, this videotk reads {SCHEMA_VERSION}"
        )
    return manifest


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
    path = Path(cache_dir) / ERRORS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
