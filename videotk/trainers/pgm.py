"""BSN's proposal generation module (PGM) over a whole dataset, in parallel with Dask, into a cache.

PGM has no parameters: from the TEM curves of a video (start, end and action probabilities at
``tscale`` points) it makes candidate proposals, their Boundary-Sensitive Proposal features and,
for training PEM, their IoU with the ground truth (:mod:`videotk.trainers.localization`). Here one
Dask task per chunk of videos does that and writes one shard; the shards and a manifest make a
``bsn-proposals`` cache, checksummed like any other, which PEM trains on.

Each video keeps exactly ``top_k`` proposals (500 for training videos, 1000 for the others in the
seed): the best by ``start x end`` score, padded when there are fewer candidates with random ones
(start <= end on the grid) as the seed did, but drawn from a generator seeded by the run's seed
and the video's index, so that the cache is the same every time (the seed's padding was unseeded).

Columns: ``id``, ``subset``, ``duration`` (seconds), ``proposals`` float32 ``[K, 4]`` (start and
end as fractions of the video, start and end scores), ``bsp`` float32 ``[K, 32]`` and ``iou``
float32 ``[K]`` (0 for videos without ground truth). Importing this module imports neither Paddle
nor Dask, so Dask's worker processes start quickly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..formats import check_shards
from ..formats.folder import build_manifest, commit_cache
from ..formats.manifest import MANIFEST, SHARDS, read_manifest
from ..formats.schema import Column, columns_to_json
from ..formats.shard import open_shard_writer, shard_name

KIND = "bsn-proposals"
COLUMNS = (
    Column("id", "string"),
    Column("subset", "string"),
    Column("duration", "float64"),
    Column("proposals", "tensor<float32>[?,4]"),
    Column("bsp", "tensor<float32>[?,32]"),
    Column("iou", "list<float32>"),
)
VIDEOS_PER_TASK = 64


@dataclass(frozen=True)
class PGMSettings:
    """PGM's settings: the boundary threshold (a point is a candidate start or end when its
    probability exceeds ``threshold`` x the curve's maximum, or is a local peak) and the
    proposals kept per video."""

    threshold: float = 0.5
    top_k_train: int = 500
    top_k: int = 1000

    def keep(self, subset: str) -> int:
        return self.top_k_train if subset == "training" else self.top_k


@dataclass(frozen=True)
class Video:
    """What PGM needs of one video: its TEM curves ``[3, T]`` (start, end, action) and ground truth."""

    index: int
    id: str
    subset: str
    duration: float
    curves: np.ndarray
    segments: np.ndarray  # [K, 2] fractions of the video


def video_proposals(video: Video, settings: PGMSettings, seed: int = 0) -> dict:
    """The record of one video: its ``top_k`` proposals, their BSP features and IoUs."""
    from .localization import bsp_features, candidate_ious, pgm_proposals

    start, end, action = (np.asarray(c, np.float64) for c in video.curves)
    found = pgm_proposals(start, end, peak_threshold=settings.threshold, top_k=settings.keep(video.subset),
                          seed=np.random.default_rng([seed, video.index]))[:, :4]
    bsp = bsp_features(action, found)
    iou = candidate_ious(found[:, :2], video.segments)
    return {"id": video.id, "subset": video.subset, "duration": float(video.duration),
            "proposals": found.astype(np.float32), "bsp": np.asarray(bsp, np.float32),
            "iou": np.asarray(iou, np.float32)}


def write_chunk(videos: list[Video], settings: PGMSettings, out: str, number: int, key: str, fmt: str,
                seed: int) -> dict:
    """One Dask task: the records of ``videos`` into shard ``number``; returns its manifest entry."""
    path = Path(out) / SHARDS / shard_name(number, key, fmt)
    writer = open_shard_writer(path, KIND, COLUMNS)
    try:
        for video in videos:
            writer.write(video_proposals(video, settings, seed))
        info = writer.finalize()
    except BaseException:
        writer.abort()
        raise
    return {"file": info.file, "rows": info.rows, "bytes": info.bytes, "sha256": info.sha256,
            "sources": [v.id for v in videos]}


def fingerprint(settings: PGMSettings, source: dict, fmt: str) -> dict:
    """What the derived cache depends on: PGM's settings, the TEM weights and the source cache."""
    return {"kind": KIND, "format": fmt, "columns": columns_to_json(COLUMNS),
            "options": {"threshold": settings.threshold, "top_k_train": settings.top_k_train,
                        "top_k": settings.top_k, **source}}


def is_current(out: Path, expected: dict) -> bool:
    """Whether ``out`` holds a finished cache made with ``expected``."""
    if not (out / MANIFEST).is_file():
        return False
    try:
        manifest = read_manifest(out)
    except Exception:  # noqa: BLE001  an unreadable manifest is rewritten
        return False
    if any(manifest.get(k) != expected[k] for k in ("kind", "format", "columns", "options")):
        return False
    return not check_shards(out)  # every shard present, of its size


def weights_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint's weights file (what ties the derived cache to the TEM that made it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_pgm(videos: list[Video], out: str | os.PathLike, *, settings: PGMSettings, source: dict,
            fmt: str = "parquet", workers: int | None = None, scheduler: str | None = None, seed: int = 0,
            progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the ``bsn-proposals`` cache of ``videos`` into ``out`` with one Dask task per
    ``VIDEOS_PER_TASK`` videos: local processes (``workers``, default every core; one runs in this
    process), or the dask.distributed cluster at ``scheduler``. A finished cache of the same
    settings, TEM weights and source is kept as it is."""
    out = Path(out)
    expected = fingerprint(settings, source, fmt)
    if is_current(out, expected):
        return out
    if out.exists():
        shutil.rmtree(out)
    (out / SHARDS).mkdir(parents=True)
    key = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:8]
    chunks = [videos[i: i + VIDEOS_PER_TASK] for i in range(0, len(videos), VIDEOS_PER_TASK)]
    workers = workers or os.cpu_count() or 1
    entries = _compute(chunks, settings, str(out), key, fmt, seed, workers, scheduler, progress)
    manifest = build_manifest(expected, classes=None, shards=entries, errors=[], inputs=len(videos))
    commit_cache(out, manifest, [])
    return out


def _compute(chunks, settings, out, key, fmt, seed, workers, scheduler, progress) -> list[dict]:
    calls = [(chunk, settings, out, number, key, fmt, seed) for number, chunk in enumerate(chunks)]
    done = 0
    if scheduler is None and (workers <= 1 or len(chunks) <= 1):
        entries = []
        for call in calls:
            entries.append(write_chunk(*call))
            done += 1
            if progress:
                progress(done, len(calls))
        return entries
    import dask

    tasks = [dask.delayed(write_chunk)(*call) for call in calls]
    if scheduler is not None:
        from distributed import Client

        with Client(scheduler) as client:
            entries = list(client.compute(tasks, sync=True))
    else:
        entries = list(dask.compute(*tasks, scheduler="processes", num_workers=min(workers, len(chunks))))
    if progress:
        progress(len(calls), len(calls))
    return entries
