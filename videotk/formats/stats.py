"""What ``vtk inspect`` reports about a cache, computed from the manifest and two light columns."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .cache import Cache
from .manifest import read_errors


def describe(cache: Cache) -> dict:
    """Rows, shards, bytes, frames per video and the label histogram of ``cache`` as plain JSON data."""
    names = {c.name for c in cache.columns}
    info = {
        "path": str(cache.path),
        "kind": cache.kind,
        "format": cache.manifest["format"],
        "records": len(cache),
        "shards": len(cache.shards),
        "bytes": sum(s["bytes"] for s in cache.shards),
        "columns": {c.name: c.type for c in cache.columns},
        "options": cache.manifest.get("options", {}),
        "errors": dict(Counter(e["status"] for e in read_errors(cache.path))),
    }
    if "num_frames" in names:
        info["frames_per_video"] = _distribution(np.asarray(cache.column("num_frames"), dtype=np.int64))
    if "labels" in names or "label" in names:
        info["labels"] = _label_counts(cache)
    return info


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


def _label_counts(cache: Cache) -> dict:
    """``{"per_class": {index: count}, "names": [...], "per_video": distribution}``."""
    if "labels" in {c.name for c in cache.columns}:
        lists = cache.column("labels")
        flat = np.concatenate(lists) if lists else np.zeros(0, np.int32)
        per_video = _distribution(np.asarray([len(v) for v in lists], dtype=np.int64))
    else:
        flat = np.asarray(cache.column("label"), dtype=np.int64)
        per_video = None
    counts = Counter(int(v) for v in flat)
    result = {"classes_seen": len(counts), "per_class": {str(k): counts[k] for k in sorted(counts)}}
    if per_video is not None:
        result["per_video"] = per_video
    if cache.classes:
        result["names"] = cache.classes
    return result
