"""What every shard writer and reader shares: checked and buffered records, atomic writing, checksums."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .codecs import Codec
from .schema import Column

TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class ShardInfo:
    """A finished shard: its file name (relative to the shards folder), row count, size and checksum."""

    file: str
    rows: int
    bytes: int
    sha256: str


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


class ShardWriter:
    """Writes records to ``path`` through a temporary name; :meth:`finalize` renames it into place.

    Every value is checked against its column's type before anything is buffered, so a refused
    record leaves the shard as it was. Records are handed to the format in batches of
    ``flush_rows`` records or ``flush_bytes`` bytes, whichever comes first.

    Use as a context manager: an exception inside the block (Ctrl-C too) removes the temporary
    file, so a shard either exists whole under its final name or not at all.
    """

    flush_rows: int
    flush_bytes: int

    def __init__(self, path: str | os.PathLike, kind: str, columns: tuple[Column, ...]):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f"{self.path.name}{TMP_MARK}{os.getpid()}")
        self.kind = kind
        self.columns = columns
        self.rows = 0
        self._names = [c.name for c in columns]
        self._codecs = [(c.name, c.codec) for c in columns]
        self._buffer: dict[str, list] = {name: [] for name in self._names}
        self._buffered_rows = self._buffered_bytes = 0

    def write(self, record: dict) -> None:
        """Add one record; ``ValueError`` (naming the key or column) when it does not fit the columns."""
        self._check_keys(record)
        values = [codec.check(record[name], name) for name, codec in self._codecs]
        for (name, codec), value in zip(self._codecs, values):
            self._buffer[name].append(value)
            self._buffered_bytes += codec.nbytes(value)
        self.rows += 1
        self._buffered_rows += 1
        if self._buffered_rows >= self.flush_rows or self._buffered_bytes >= self.flush_bytes:
            self._flush()

    def finish(self) -> ShardInfo:
        """Complete the temporary file (flushed and synced); :meth:`commit` then gives it its name.

        Between the two a caller can record the shard it is about to name (the runner's journal).
        """
        digest = self._close()
        with open(self.tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        return ShardInfo(self.path.name, self.rows, self.tmp_path.stat().st_size, digest or file_sha256(self.tmp_path))

    def commit(self) -> None:
        os.replace(self.tmp_path, self.path)

    def finalize(self) -> ShardInfo:
        """:meth:`finish` and :meth:`commit`: the shard under its final name."""
        info = self.finish()
        self.commit()
        return info

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

    def _flush(self) -> None:
        if self._buffered_rows:
            self._write_batch(self._buffer)
        self._buffer = {name: [] for name in self._names}
        self._buffered_rows = self._buffered_bytes = 0

    def _write_batch(self, batch: dict[str, list]) -> None:
        """Write buffered values (column name -> one value per record) to the file."""
        raise NotImplementedError

    def _close(self, flush: bool = True) -> str | None:
        """Close the temporary file; return its sha256 when it was computed while writing."""
        raise NotImplementedError


class ShardReader:
    """Random access and iteration over one shard's records (dicts keyed by column name)."""

    path: str
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

    def codec(self, name: str) -> Codec:
        """The codec of column ``name``; ``KeyError`` naming the shard and its columns."""
        for column in self.columns:
            if column.name == name:
                return column.codec
        raise KeyError(f"{self.path}: no column {name!r}; columns are {[c.name for c in self.columns]}")
