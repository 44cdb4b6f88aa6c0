"""What ``vtk inspect`` reports about a cache, computed from the manifest and two light columns."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .cache import Cache, ShardProblem, check_shards
from .manifest import CacheError, read_errors


def describe(cache: Cache) -> dict:
    """Rows, shards, bytes, frames per video and the label histogram of ``cache`` as plain JSON data.

    Files of the cache that are missing, of the wrong size or unreadable (shards, errors.jsonl) are
    listed under ``problems`` (``[{"file", "reason"}]``) and left out of the figures.
    """
    names = {c.name for c in cache.columns}
    problems = check_shards(cache)
    columns = {name: readable_column(cache, name, problems) for name in ("num_frames", "labels", "label") if name in names}
    info = {
        "path": str(cache.path),
        "kind": cache.kind,
        "format": cache.manifest["format"],
        "records": len(cache),
        "shards": len(cache.shards),
        "bytes": sum(s["bytes"] for s in cache.shards),
        "columns": {c.name: c.type for c in cache.columns},
        "options": cache.manifest.get("options", {}),
        "errors": _error_counts(cache, problems),
    }
    if "num_frames" in columns:
        info["frames_per_video"] = _distribution(np.asarray(columns["num_frames"], dtype=np.int64))
    if "labels" in columns or "label" in columns:
        info["labels"] = _label_counts(cache, columns)
    info["problems"] = [{"file": p.file, "reason": p.reason} for p in problems]
    return info


def readable_column(cache: Cache, name: str, problems: list[ShardProblem]) -> list:
    """Column ``name`` over the shards that ``problems`` does not name and that can be read; the
    unreadable ones are added to ``problems``."""
    values = []
    for index, entry in enumerate(cache.shards):
        if any(p.file == entry["file"] for p in problems):
            continue
        try:
            values.extend(cache.shard(index).read_column(name))
        except Exception as exc:  # a damaged file can fail in many ways inside pyarrow / h5py
            problems.append(ShardProblem(entry["file"], f"unreadable ({' '.join(str(exc).split())})"))
    return values


def _error_counts(cache: Cache, problems: list[ShardProblem]) -> dict:
    try:
        return dict(Counter(e["status"] for e in read_errors(cache.path)))
    except CacheError as exc:
        problems.append(ShardProblem("errors.jsonl", str(exc)))
        return {}


def _distribution(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "min": int(values.min()),
        "max": int(values.max()),
        "mean": round(float(values.mean()), 2),
        "median": float(np.median(values)),
        "total": int(values.sum()),
    }


def _label_counts(cache: Cache, columns: dict[str, list]) -> dict:
    """``{"per_class": {index: count}, "names": [...], "per_video": distribution}``."""
    if "labels" in columns:
        lists = columns["labels"]
        flat = np.concatenate(lists) if lists else np.zeros(0, np.int32)
        per_video = _distribution(np.asarray([len(v) for v in lists], dtype=np.int64))
    else:
        flat = np.asarray(columns["label"], dtype=np.int64)
        per_video = None
    counts = Counter(int(v) for v in flat)
    result = {"classes_seen": len(counts), "per_class": {str(k): counts[k] for k in sorted(counts)}}
    if per_video is not None:
        result["per_video"] = per_video
    if cache.classes:
        result["names"] = cache.classes
    return result
