"""``open_cache``: one sequence of records over every shard of a cache folder, in either format."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Iterator

from .base import ShardReader, file_sha256
from .manifest import SHARDS, CacheError, read_manifest
from .schema import Column, columns_from_json
from .shard import open_shard_reader


OPEN_READERS = 8


class Cache:
    """Records of a cache: ``len()``, iteration in shard order, and random access ``cache[i]``.

    Shard readers open on first use, so a ``Cache`` is cheap to create and to hand to data
    workers (forked, or pickled into ``paddle.io.DataLoader``'s).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.columns: tuple[Column, ...] = columns_from_json(self.manifest["columns"])
        self.shards: list[dict] = self.manifest["shards"]
        self._starts = [0, *accumulate(s["rows"] for s in self.shards)]
        self._readers: OrderedDict[int, ShardReader] = OrderedDict()

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def classes(self) -> list[str] | None:
        return self.manifest.get("classes")

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: record {index} out of range ({len(self)} records)")
        shard = bisect_right(self._starts, index) - 1
        return self.shard(shard).read(index - self._starts[shard])

    def __iter__(self) -> Iterator[dict]:
        for shard in range(len(self.shards)):
            yield from self.shard(shard)

    def column(self, name: str) -> list:
        """One column over the whole cache (e.g. ``num_frames`` or ``labels``), reading nothing else."""
        if name not in {c.name for c in self.columns}:
            raise KeyError(f"{self.path}: no column {name!r}; columns are {[c.name for c in self.columns]}")
        return [value for shard in range(len(self.shards)) for value in self.shard(shard).read_column(name)]

    def shard(self, index: int) -> ShardReader:
        """The reader of shard ``index`` (in manifest order); the ``OPEN_READERS`` most recently used stay open."""
        if index in self._readers:
            self._readers.move_to_end(index)
        else:
            self._readers[index] = open_shard_reader(self.shard_path(index))
            if len(self._readers) > OPEN_READERS:
                self._readers.popitem(last=False)[1].close()
        return self._readers[index]

    def shard_path(self, index: int) -> Path:
        return self.path / SHARDS / self.shards[index]["file"]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_readers": OrderedDict()}

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, kind={self.kind!r}, records={len(self)}, shards={len(self.shards)})"


def open_cache(path: str | os.PathLike) -> Cache:
    """Open the cache folder ``path`` (Parquet or HDF5 shards) written by ``vtk convert`` / ``vtk decode``."""
    return Cache(path)


@dataclass(frozen=True)
class ShardProblem:
    """A shard of a cache that does not match its manifest: ``file`` (its name in ``shards/``) and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def check_shards(cache: Cache | str | os.PathLike, *, deep: bool = False) -> list[ShardProblem]:
    """The shards of ``cache`` that do not match its manifest, in manifest order (none: all match).

    ``deep=False`` only looks at the file system: every shard exists and has the manifest's size
    (cheap: one ``stat`` per shard, a check to run before training). ``deep=True`` also reads
    every shard: its sha256 and row count. ``cache`` is an open :class:`Cache` or its folder
    (``CacheError`` when the folder is not a readable cache).
    """
    cache = cache if isinstance(cache, Cache) else Cache(cache)
    problems = []
    for index, entry in enumerate(cache.shards):
        path = cache.shard_path(index)
        problem = _stat_problem(path, entry) or (_content_problem(path, entry) if deep else None)
        if problem:
            problems.append(ShardProblem(entry["file"], problem))
    return problems


def verify_cache(path: str | os.PathLike) -> list[ShardProblem]:
    """``check_shards(path, deep=True)``: size, sha256 and row count of every shard."""
    return check_shards(path, deep=True)


def _stat_problem(path: Path, entry: dict) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not path.is_file():
        return "not a file"
    if size != entry["bytes"]:
        return f"size {size} bytes, manifest says {entry['bytes']}"
    return None


def _content_problem(path: Path, entry: dict) -> str | None:
    try:
        digest = file_sha256(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if digest != entry["sha256"]:
        return f"sha256 {digest[:16]}..., manifest says {entry['sha256'][:16]}..."
    try:
        rows = len(open_shard_reader(path))
    except Exception as exc:  # a damaged file can fail in many ways inside pyarrow / h5py
        return f"unreadable ({exc})"
    if rows != entry["rows"]:
        return f"{rows} rows, manifest says {entry['rows']}"
    return None


__all__ = ["Cache", "CacheError", "ShardProblem", "check_shards", "open_cache", "verify_cache"]
