"""What every shard writer and reader shares: atomic writing, checksums, format dispatch."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .schema import Column

FORMATS = {"parquet": ".parquet", "hdf5": ".h5"}
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class ShardInfo:
    """A finished shard: its file name (relative to the shards folder), row count, size and checksum."""

    file: str
    rows: int
    bytes: int
    sha256: str


def shard_name(index: int, key: str, fmt: str) -> str:
    """The one naming rule for shards: ``part-00003-<key>.parquet``; ``key`` is a hex digest."""
    if not key.isalnum():
        raise ValueError(f"shard key must be alphanumeric, got {key!r}")
    return f"part-{index:05d}-{key}{FORMATS[fmt]}"


def format_of(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix
    for fmt, ext in FORMATS.items():
        if suffix == ext:
            return fmt
    raise ValueError(f"{path}: not a shard file (expected one of {sorted(FORMATS.values())})")


def file_sha256(path: str | os.PathLike, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class HashingFile(io.RawIOBase):
    """A write-only file that computes its sha256 on the way, for writers that never seek back."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self._file = open(path, "wb")
        self._digest = hashlib.sha256()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._digest.update(data)
        written = self._file.write(data)
        self._position += written
        return written

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete half-written shards left by an interrupted run; returns what was removed."""
    removed = [p for p in Path(folder).glob(f"*{TMP_MARK}*") if p.is_file()]
    for p in removed:
        p.unlink()
    return removed


class ShardWriter:
    """Writes records to ``path`` through a temporary name; :meth:`finalize` renames it into place.

    Use as a context manager: an exception inside the block removes the temporary file, so a shard
    either exists whole under its final name or not at all.
    """

    def __init__(self, path: str | os.PathLike, kind: str, columns: tuple[Column, ...]):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f"{self.path.name}{TMP_MARK}{os.getpid()}")
        self.kind = kind
        self.columns = columns
        self.rows = 0
        self._names = [c.name for c in columns]

    def write(self, record: dict) -> None:
        self._check_keys(record)
        self._write(record)
        self.rows += 1

    def finalize(self) -> ShardInfo:
        digest = self._close()
        with open(self.tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp_path, self.path)
        return ShardInfo(self.path.name, self.rows, self.path.stat().st_size, digest or file_sha256(self.path))

    def abort(self) -> None:
        try:
            self._close(flush=False)
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def _check_keys(self, record: dict) -> None:
        if record.keys() != set(self._names):
            missing = sorted(set(self._names) - record.keys())
            extra = sorted(record.keys() - set(self._names))
            raise ValueError(f"record keys do not match the {self.kind} columns: missing {missing}, unexpected {extra}")

    def _write(self, record: dict) -> None:
        raise NotImplementedError

    def _close(self, flush: bool = True) -> str | None:
        """Close the temporary file; return its sha256 when it was computed while writing."""
        raise NotImplementedError


class ShardReader:
    """Random access and iteration over one shard's records (dicts keyed by column name)."""

    kind: str
    columns: tuple[Column, ...]

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> dict:
        raise NotImplementedError

    def read_column(self, name: str) -> list:
        """Every record's value of one column, reading nothing else."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the open file; a later read opens it again."""

    def __iter__(self) -> Iterator[dict]:
        raise NotImplementedError


def open_shard_writer(path: str | os.PathLike, kind: str, columns: tuple[Column, ...]) -> ShardWriter:
    """A writer for ``path``; the format follows the file's extension."""
    fmt = format_of(path)
    if fmt == "parquet":
        from .parquet import ParquetShardWriter

        return ParquetShardWriter(path, kind, columns)
    from .hdf5 import HDF5ShardWriter

    return HDF5ShardWriter(path, kind, columns)


def open_shard_reader(path: str | os.PathLike) -> ShardReader:
    """A reader for ``path``; the format follows the file's extension."""
    if format_of(path) == "parquet":
        from .parquet import ParquetShardReader

        return ParquetShardReader(path)
    from .hdf5 import HDF5ShardReader

    return HDF5ShardReader(path)
