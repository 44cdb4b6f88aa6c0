"""Run one conversion job: one task per input file (or chunk of videos), each writing one shard.

The cache folder during a job::

    CACHE/.journal/job.json               the job's options; a resumed run must ask for the same
    CACHE/.journal/part-00003-<key>.json  one per finished task: its shard, rows and errors
    CACHE/shards/part-00003-<key>.parquet one per task that produced records

A task writes its shard under a temporary name, renames it, then writes its journal entry. A run
that was interrupted (even by ``kill -9``) is resumed by running the same command again: tasks whose
journal entry and shard are present are skipped. ``errors.jsonl`` and then ``manifest.json`` are
written last, from the journal, so a cache with a manifest is always complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..formats.manifest import (
    ERRORS,
    MANIFEST,
    SHARDS,
    error_entry,
    write_atomic,
    write_errors,
    write_manifest,
)
from ..formats.schema import Column, columns_to_json
from ..formats.folder import remove_stale_temporaries
from ..formats.shard import open_shard_writer, shard_name

log = logging.getLogger(__name__)

JOURNAL = ".journal"
JOB_FILE = "job.json"


class JobConflict(Exception):
    """The output folder holds something other than a cache of this very job."""


@dataclass(frozen=True)
class Task:
    """One unit of work: ``payload`` is what the work function needs; ``sources`` name its inputs."""

    index: int
    key: str
    sources: tuple[str, ...]
    payload: Any


@dataclass
class JobSpec:
    """Everything that defines a job's output; equal specs give equal caches."""

    kind: str
    fmt: str
    columns: tuple[Column, ...]
    options: dict
    classes: list[str] | None = None

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "format": self.fmt, "columns": columns_to_json(self.columns), "options": self.options}


@dataclass
class Summary:
    """What a job did; ``failed`` counts error lines with status ``failed``."""

    cache: str
    records: int = 0
    shards: int = 0
    bytes: int = 0
    inputs: int = 0
    failed: int = 0
    missing: int = 0
    skipped: int = 0
    resumed: int = 0
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list, repr=False)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def task_key(spec: JobSpec, identity: Iterable) -> str:
    """A short digest binding a task's shard to the job options and to its inputs' identity."""
    text = json.dumps([spec.fingerprint(), list(identity)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_identity(path: str | os.PathLike) -> tuple[str, int, int]:
    stat = os.stat(path)
    return (os.fspath(path), stat.st_size, stat.st_mtime_ns)


WorkFn = Callable[[Any, Any], list[dict]]


def run_task(work: WorkFn, task: Task, spec: JobSpec, cache_dir: str) -> dict:
    """Execute one task in whatever process runs it; returns (and journals) its outcome."""
    name = shard_name(task.index, task.key, spec.fmt)
    shard_path = Path(cache_dir) / SHARDS / name
    writer = open_shard_writer(shard_path, spec.kind, spec.columns)
    try:
        errors = work(task.payload, writer)
    except Exception:
        writer.abort()
        raise
    if writer.rows:
        info = asdict(writer.finalize())
    else:
        writer.abort()
        info = None
    outcome = {"key": task.key, "index": task.index, "sources": list(task.sources), "shard": info, "errors": errors}
    write_atomic(_journal_dir(cache_dir) / f"{Path(name).stem}.json", json.dumps(outcome))
    return outcome


def run_job(
    spec: JobSpec,
    tasks: list[Task],
    work: WorkFn,
    cache_dir: str | os.PathLike,
    *,
    listing_errors: list[dict] = (),
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> Summary:
    """Run ``tasks`` (skipping those a previous run finished) and write errors.jsonl and manifest.json.

    ``progress(done, total)`` is called as tasks finish. ``listing_errors`` are problems found
    before any task ran (missing clips, unreadable annotation rows) and go to errors.jsonl too.
    """
    start = time.perf_counter()
    cache_dir = os.fspath(Path(cache_dir).resolve())
    _prepare(cache_dir, spec, overwrite)
    done = _finished(cache_dir, tasks, spec.fmt)
    todo = [t for t in tasks if t.key not in done]
    if progress:
        progress(len(done), len(tasks))
    outcomes = dict(done)
    for outcome in _execute(work, todo, spec, cache_dir, workers, scheduler):
        outcomes[outcome["key"]] = outcome
        if progress:
            progress(len(outcomes), len(tasks))
    ordered = [outcomes[t.key] for t in tasks]
    summary = _write_cache(cache_dir, spec, ordered, list(listing_errors))
    summary.resumed = len(done)
    summary.seconds = time.perf_counter() - start
    return summary


def _journal_dir(cache_dir: str) -> Path:
    return Path(cache_dir) / JOURNAL


def _prepare(cache_dir: str, spec: JobSpec, overwrite: bool) -> None:
    root = Path(cache_dir)
    job_file = _journal_dir(cache_dir) / JOB_FILE
    fingerprint = spec.fingerprint()
    if overwrite and root.exists():
        _clear(root)
    if job_file.is_file():
        previous = json.loads(job_file.read_text())
        if previous != fingerprint:
            raise JobConflict(f"{cache_dir} was made with other options ({_difference(previous, fingerprint)}); "
                              "choose another --out or pass --overwrite")
    elif root.exists() and any(root.iterdir()):
        raise JobConflict(f"{cache_dir} exists and is not a videotk cache of this job; "
                          "choose another --out or pass --overwrite")
    (root / SHARDS).mkdir(parents=True, exist_ok=True)
    _journal_dir(cache_dir).mkdir(exist_ok=True)
    write_atomic(job_file, json.dumps(fingerprint))
    remove_stale_temporaries(root)


def _clear(root: Path) -> None:
    for name in (MANIFEST, ERRORS):
        (root / name).unlink(missing_ok=True)
    for name in (SHARDS, JOURNAL):
        shutil.rmtree(root / name, ignore_errors=True)


def _difference(previous: dict, current: dict) -> str:
    old, new = previous.get("options", {}), current.get("options", {})
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    for key in ("kind", "format"):
        if previous.get(key) != current.get(key):
            changed.append(f"{key}: {previous.get(key)!r} -> {current.get(key)!r}")
    return ", ".join(changed) or "columns differ"


def _finished(cache_dir: str, tasks: list[Task], fmt: str) -> dict[str, dict]:
    """Outcomes of tasks a previous run completed: journal entry present and shard intact."""
    done = {}
    for task in tasks:
        name = shard_name(task.index, task.key, fmt)
        entry = _journal_dir(cache_dir) / f"{Path(name).stem}.json"
        if not entry.is_file():
            continue
        outcome = json.loads(entry.read_text())
        shard = outcome["shard"]
        if shard is None or _intact(Path(cache_dir) / SHARDS / shard["file"], shard["bytes"]):
            done[task.key] = outcome
    return done


def _intact(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _execute(work: WorkFn, tasks: list[Task], spec: JobSpec, cache_dir: str, workers: int | None, scheduler: str | None):
    """Yield task outcomes as they finish: in this process for one local worker, else on Dask."""
    if not tasks:
        return
    workers = workers or os.cpu_count() or 1
    if scheduler is None and workers == 1:
        for task in tasks:
            yield _guarded(lambda: run_task(work, task, spec, cache_dir), task)
        return
    yield from _execute_dask(work, tasks, spec, cache_dir, workers, scheduler)


def _execute_dask(work, tasks, spec, cache_dir, workers, scheduler):
    from dask.distributed import Client, as_completed

    # distributed logs every worker start and stop at INFO; show them only when asked for debug output
    logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    cluster = local_cluster(min(workers, len(tasks))) if scheduler is None else None
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = {client.submit(run_task, work, t, spec, cache_dir, key=f"vtk-{t.key}-{t.index}", pure=False): t
                   for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            yield _guarded(future.result, task)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def local_cluster(workers: int):
    """Worker processes of one thread each, started without distributed's default
    ``MALLOC_TRIM_THRESHOLD_``: that setting fixes glibc's mmap threshold, so every large record
    buffer becomes an mmap/munmap pair, which halves conversion throughput."""
    import dask
    from dask.distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")  # another cluster's; a free one is used
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.ERROR)


def _guarded(call: Callable[[], dict], task: Task) -> dict:
    """A task's outcome; a task that crashed as a whole records every one of its inputs as failed."""
    try:
        return call()
    except Exception as exc:  # the job goes on: the crash is recorded against the task's inputs
        log.debug("task %s failed", task.index, exc_info=True)
        reason = f"task crashed: {type(exc).__name__}: {exc}"
        errors = [error_entry(source, None, reason) for source in task.sources]
        return {"key": task.key, "index": task.index, "sources": list(task.sources), "shard": None, "errors": errors}


def _write_cache(cache_dir: str, spec: JobSpec, outcomes: list[dict], listing_errors: list[dict]) -> Summary:
    shards = [{**o["shard"], "sources": o["sources"]} for o in outcomes if o["shard"]]
    errors = listing_errors + [e for o in outcomes for e in o["errors"]]
    _remove_unlisted_shards(cache_dir, {s["file"] for s in shards})
    counts = {status: sum(e["status"] == status for e in errors) for status in ("failed", "missing", "skipped")}
    summary = Summary(
        cache=cache_dir,
        records=sum(s["rows"] for s in shards),
        shards=len(shards),
        bytes=sum(s["bytes"] for s in shards),
        inputs=sum(len(o["sources"]) for o in outcomes),
        errors=errors,
        **counts,
    )
    write_errors(cache_dir, errors)
    write_manifest(cache_dir, {
        **spec.fingerprint(),
        "columns": columns_to_json(spec.columns),
        "classes": spec.classes,
        "summary": {k: getattr(summary, k) for k in ("records", "shards", "bytes", "inputs", "failed", "missing", "skipped")},
        "shards": shards,
    })
    return summary


def _remove_unlisted_shards(cache_dir: str, keep: set[str]) -> None:
    """Shards of tasks that no longer exist (inputs changed since an interrupted run) are removed."""
    for path in (Path(cache_dir) / SHARDS).iterdir():
        if path.name not in keep:
            log.info("removing %s: no task of this job wrote it", path.name)
            path.unlink()

