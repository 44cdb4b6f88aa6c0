"""What the video classification tasks share: view averaging and top-k prediction records."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ...formats import Cache


def top_classes(scores: np.ndarray, top_k: int, names: list[str] | None) -> dict:
    """``{"classes", "scores"[, "names"]}`` of the ``top_k`` best of ``scores`` ``[C]``."""
    top = np.argsort(-scores, kind="stable")[:top_k]
    result = {"classes": top.tolist(), "scores": [round(float(s), 6) for s in scores[top]]}
    if names:
        result["names"] = [names[i] if i < len(names) else str(i) for i in top.tolist()]
    return result


def classes_line(record: dict) -> str:
    """``name score, name score, ...`` of a top-classes record (class indices without names)."""
    labels = record.get("names") or [str(c) for c in record["classes"]]
    return ", ".join(f"{label} {score:.3f}" for label, score in zip(labels, record["scores"]))


def view_means(batches: Iterable[tuple[np.ndarray, np.ndarray]], views: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(record index, mean scores [C])`` per video once all its ``views`` views arrived, from
    ``(scores [N, C], record index [N])`` batches (a video's views may straddle batches)."""
    pending: dict[int, tuple[np.ndarray, int]] = {}
    for scores, indices in batches:
        for row, index in enumerate(indices.tolist()):
            total, seen = pending.pop(index, (0.0, 0))
            total, seen = total + scores[row], seen + 1
            if seen < views:
                pending[index] = (total, seen)
            else:
                yield index, total / seen


def prediction_records(batches: Iterable[tuple[np.ndarray, np.ndarray]], cache: Cache, *, views: int, top_k: int,
                       classes: list[str] | None) -> Iterator[dict]:
    """``{"id", "classes", "scores"[, "names"]}`` per video of ``cache``, scores averaged over views."""
    ids = cache.column("id")
    for index, scores in view_means(batches, views):
        yield {"id": ids[index], **top_classes(scores, top_k, classes)}
