"""Run one conversion job: one task per input file (or chunk of videos), each writing one shard.

The cache folder during a job::

    CACHE/.journal/job.json               the job's fingerprint; a resumed run must ask for the same
    CACHE/.journal/part-00003-<key>.json  one per finished task: its shard, rows and errors
    CACHE/shards/part-00003-<key>.parquet one per task that produced records

A task completes its shard under a temporary name, writes its journal entry, then gives the shard
its name, so the journal names every shard a task wrote. A run that was interrupted (Ctrl-C, a
crash, even ``kill -9``) is resumed by running the same command again: tasks whose journal entry
and shard are present are skipped. ``errors.jsonl`` and then ``manifest.json`` are written last,
from the journal, so a cache with a manifest is always complete. Which folders a job may write
into, and what ``overwrite`` removes, is :mod:`videotk.formats.folder`'s business.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..formats.folder import (
    JOURNAL,
    REPLACE,
    FolderError,
    build_manifest,
    clear_cache,
    commit_cache,
    plan_folder,
    remove_stale_temporaries,
)
from ..formats.manifest import SHARDS, error_entry, write_atomic
from ..formats.schema import Column, columns_to_json
from ..formats.shard import open_shard_writer, shard_name

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
CONNECT_TIMEOUT_S = 5.0


class SchedulerError(Exception):
    """``--scheduler`` names no dask.distributed scheduler that answers."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) ended a job; ``finished`` of ``total`` tasks are done and kept in ``cache``."""

    def __init__(self, finished: int, total: int, cache: str):
        super().__init__(finished, total, cache)
        self.finished, self.total, self.cache = finished, total, cache

    def __str__(self) -> str:
        if not self.finished:
            return "interrupted before any shard was finished; run the same command again to start over"
        return (f"interrupted: {self.finished} of {self.total} shards are finished and kept in {self.cache}; "
                "run the same command again to resume")


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


class UnreadableSource(ValueError):
    """A job's input folder or file cannot be read at all."""


def common_width(probes: Iterable[int | str], sample: int) -> tuple[int | None, str | None]:
    """``(width, first problem)``: the most common of the first ``sample`` widths among ``probes``,
    which yield a width for each input they could read and a problem (text) for each they could
    not; so one misshapen file does not set the width of the others. The width is None when no
    input could be read."""
    widths, first_problem = [], None
    for probe in probes:
        if isinstance(probe, str):
            first_problem = first_problem or probe
            continue
        widths.append(probe)
        if len(widths) == sample:
            break
    return (Counter(widths).most_common(1)[0][0] if widths else None), first_problem


def check_readable(path: Path, option: str = "--src") -> None:
    """Raise :class:`UnreadableSource`, naming ``option``, when the folder or file ``path`` exists
    but cannot be read (a path that does not exist is left to the caller to report)."""
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb"):
                pass
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise UnreadableSource(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None


WorkFn = Callable[[Any, Any], list[dict]]


def run_task(work: WorkFn, task: Task, spec: JobSpec, cache_dir: str) -> dict:
    """Execute one task in whatever process runs it; returns (and journals) its outcome."""
    name = shard_name(task.index, task.key, spec.fmt)
    with open_shard_writer(Path(cache_dir) / SHARDS / name, spec.kind, spec.columns) as writer:
        errors = work(task.payload, writer)
        info = asdict(writer.finish()) if writer.rows else None
        outcome = {"key": task.key, "index": task.index, "sources": list(task.sources), "shard": info, "errors": errors}
        with _deferred_stop():
            write_atomic(_entry_path(Path(cache_dir), name), json.dumps(outcome))
            if info:
                writer.commit()
            else:
                writer.abort()
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
    The folder is checked before anything is written, and nothing is written into it before the
    workers (or the scheduler) are there. Raises :class:`~videotk.formats.folder.FolderError` for
    a folder the job may not write, :class:`SchedulerError`, and :class:`JobInterrupted` on Ctrl-C.
    """
    start = time.perf_counter()
    root = Path(cache_dir).resolve()
    plan = plan_folder(root, spec.fingerprint(), journaled=_journaled(root), overwrite=overwrite)
    done = {} if plan == REPLACE else _finished(root, tasks, spec.fmt)
    todo = [t for t in tasks if t.key not in done]
    try:
        with _executor(workers, scheduler, len(todo)) as execute:
            _prepare(root, spec, plan)
            outcomes = dict(done)
            if progress:
                progress(len(done), len(tasks))
            for outcome in execute(work, todo, spec, str(root)):
                outcomes[outcome["key"]] = outcome
                if progress:
                    progress(len(outcomes), len(tasks))
        summary = _commit(root, spec, tasks, outcomes, list(listing_errors))
    except KeyboardInterrupt:
        raise JobInterrupted(len(_finished(root, tasks, spec.fmt)), len(tasks), str(root)) from None
    summary.resumed = len(done)
    summary.seconds = time.perf_counter() - start
    return summary


def _journal_dir(root: Path) -> Path:
    return root / JOURNAL


def _entry_path(root: Path, shard: str) -> Path:
    return _journal_dir(root) / f"{Path(shard).stem}.json"


def _journaled(root: Path) -> dict | None:
    """The fingerprint of the job that journals into ``root``, None when there is none."""
    path = _journal_dir(root) / JOB_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{path}: cannot be read ({exc}); remove {_journal_dir(root)} to start the job over") from None


def _entries(root: Path) -> Iterator[tuple[Path, dict | None]]:
    """Every journal entry and its outcome (None when it cannot be read)."""
    for path in sorted(_journal_dir(root).glob("part-*.json")):
        try:
            yield path, json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("ignoring unreadable journal entry %s", path)
            yield path, None


def _journal_shards(root: Path) -> list[str]:
    """The shards the journal names: every shard a task of this folder's jobs wrote."""
    return [outcome["shard"]["file"] for _, outcome in _entries(root) if outcome and outcome.get("shard")]


def _prepare(root: Path, spec: JobSpec, plan: str) -> None:
    """Clear a cache of other options (``plan`` REPLACE), then start or resume the journal."""
    if plan == REPLACE:
        clear_cache(root, _journal_shards(root))
        _clear_journal(root)
    (root / SHARDS).mkdir(parents=True, exist_ok=True)
    _journal_dir(root).mkdir(exist_ok=True)
    write_atomic(_journal_dir(root) / JOB_FILE, json.dumps(spec.fingerprint()))
    remove_stale_temporaries(root)


def _clear_journal(root: Path) -> None:
    """Remove the journal's files: entries, their half-written temporaries and the job file."""
    journal = _journal_dir(root)
    for path in (*journal.glob("part-*.json"), *journal.glob(".part-*.json.tmp-*"), journal / JOB_FILE):
        path.unlink(missing_ok=True)


def _finished(root: Path, tasks: list[Task], fmt: str) -> dict[str, dict]:
    """Outcomes of tasks a previous run completed: journal entry present and shard intact."""
    done = {}
    for task in tasks:
        entry = _entry_path(root, shard_name(task.index, task.key, fmt))
        try:
            outcome = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        shard = outcome["shard"]
        if shard is None or _intact(root / SHARDS / shard["file"], shard["bytes"]):
            done[task.key] = outcome
    return done


def _intact(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _commit(root: Path, spec: JobSpec, tasks: list[Task], outcomes: dict[str, dict], listing_errors: list[dict]) -> Summary:
    """Write errors.jsonl and manifest.json from the tasks' outcomes; drop journal entries of tasks
    that are no longer part of the job (their inputs changed)."""
    ordered = [outcomes[t.key] for t in tasks]
    shards = [{**o["shard"], "sources": o["sources"]} for o in ordered if o["shard"]]
    errors = listing_errors + [e for o in ordered for e in o["errors"]]
    manifest = build_manifest(spec.fingerprint(), classes=spec.classes, shards=shards, errors=errors,
                              inputs=sum(len(o["sources"]) for o in ordered))
    commit_cache(root, manifest, errors, written=_journal_shards(root))
    current = {_entry_path(root, shard_name(t.index, t.key, spec.fmt)) for t in tasks}
    for path, _ in _entries(root):
        if path not in current:
            path.unlink()
    return Summary(cache=str(root), errors=errors, **manifest["summary"])


Execute = Callable[[WorkFn, list[Task], JobSpec, str], Iterator[dict]]

#: seconds a local worker is given to stop (its task aborted, its ffmpeg killed) before it is killed
STOP_TIMEOUT_S = 5.0


@contextlib.contextmanager
def _executor(workers: int | None, scheduler: str | None, count: int) -> Iterator[Execute]:
    """What runs ``count`` tasks: this process for one local worker, a pool of forked local
    processes for more, or the Dask cluster at ``scheduler``."""
    workers = workers or os.cpu_count() or 1
    if scheduler is not None:
        with _dask_client(scheduler) as client:
            yield lambda work, tasks, spec, cache_dir: _on_dask(client, work, tasks, spec, cache_dir)
        return
    if count == 0 or workers == 1:
        yield _in_process
        return
    with _local_pool(min(workers, count)) as pool:
        yield lambda work, tasks, spec, cache_dir: _on_pool(pool, work, tasks, spec, cache_dir)


def _in_process(work: WorkFn, tasks: list[Task], spec: JobSpec, cache_dir: str) -> Iterator[dict]:
    for task in tasks:
        yield _guarded(lambda: run_task(work, task, spec, cache_dir), task)


@contextlib.contextmanager
def _local_pool(workers: int):
    """A pool of ``workers`` local processes, stopped on the way out (also on Ctrl-C or an error).

    A local run needs no cluster: the processes are forked from this one, so they start in
    milliseconds with every module already imported (a dask.distributed LocalCluster spawns a
    scheduler, nannies and workers that import the whole stack again: about a second of a short
    job). Where fork is not available they are started by a fork server. Workers ignore SIGINT
    (Ctrl-C reaches the whole process group; this process stops them) and turn SIGTERM into an
    exception, so a task that is stopped removes its temporary shard and kills its ffmpeg.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "forkserver"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_worker_signals)
    try:
        yield pool
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


class _Stop:
    """A local worker's SIGTERM: it ends the task at once, except between a task's journal entry
    and the naming of its shard, where it waits for the end of that step (the task is finished)."""

    deferring = False
    pending: int | None = None


def _worker_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stopped)


def _stopped(signum, frame) -> None:
    if _Stop.deferring:
        _Stop.pending = signum
        return
    raise SystemExit(f"stopped by signal {signum}")


@contextlib.contextmanager
def _deferred_stop():
    """The block runs whole even if a local worker is told to stop meanwhile (see :class:`_Stop`)."""
    _Stop.deferring = True
    try:
        yield
    finally:
        _Stop.deferring = False
    if _Stop.pending is not None:
        _stopped(_Stop.pending, None)


def _stop_pool(pool) -> None:
    """Cancel the tasks that have not started and stop the processes (SIGTERM, then SIGKILL after
    ``STOP_TIMEOUT_S``). ``_processes`` is the executor's own table of its worker processes."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    pool.shutdown(wait=True)


def _on_pool(pool, work: WorkFn, tasks: list[Task], spec: JobSpec, cache_dir: str) -> Iterator[dict]:
    from concurrent.futures import as_completed

    # the processes start as tasks are submitted: with SIGINT ignored, which they inherit
    with _sigint_ignored():
        futures = {pool.submit(run_task, work, t, spec, cache_dir): t for t in tasks}
    for future in as_completed(futures):
        yield _guarded(future.result, futures[future])


def _on_dask(client, work: WorkFn, tasks: list[Task], spec: JobSpec, cache_dir: str) -> Iterator[dict]:
    from dask.distributed import as_completed

    futures = {client.submit(run_task, work, t, spec, cache_dir, key=f"vtk-{t.key}-{t.index}", pure=False): t
               for t in tasks}
    for future in as_completed(futures):
        yield _guarded(future.result, futures[future])


@contextlib.contextmanager
def _dask_client(scheduler: str):
    # distributed logs every worker start and stop at INFO; show them only when asked for debug output
    logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    with _connect(scheduler) as client:
        yield client


def _connect(address: str):
    from dask.distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:  # a bad address, a refused or timed-out connection, or something else answering
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise SchedulerError(f"--scheduler {address}: no dask.distributed scheduler could be reached within "
                             f"{CONNECT_TIMEOUT_S:g} s ({reason})") from None


def local_cluster(workers: int):
    """A local Dask cluster of ``workers`` processes of one thread each, for ``--scheduler``
    (``cluster.scheduler_address``): local runs without it use :func:`_local_pool`.

    The worker processes ignore SIGINT: Ctrl-C goes to the terminal's whole process group, and a
    worker must not die in the middle of a task; the calling process handles it and stops them.
    They are started without distributed's default ``MALLOC_TRIM_THRESHOLD_``: that setting fixes
    glibc's mmap threshold, so every large record buffer becomes an mmap/munmap pair, which halves
    conversion throughput.
    """
    import dask
    from dask.distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), warnings.catch_warnings(), _sigint_ignored():
        warnings.filterwarnings("ignore", message="Port .* is already in use")  # another cluster's; a free one is used
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.ERROR)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while the block runs, so that processes started in it inherit that (the
    main thread only: other threads cannot change signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _guarded(call: Callable[[], dict], task: Task) -> dict:
    """A task's outcome; a task that crashed as a whole records every one of its inputs as failed."""
    try:
        return call()
    except Exception as exc:  # the job goes on: the crash is recorded against the task's inputs
        log.debug("task %s failed", task.index, exc_info=True)
        reason = f"task crashed: {type(exc).__name__}: {exc}"
        errors = [error_entry(source, None, reason) for source in task.sources]
        return {"key": task.key, "index": task.index, "sources": list(task.sources), "shard": None, "errors": errors}
