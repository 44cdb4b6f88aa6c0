"""HDF5 shards: the same records under the same names as the Parquet shards.

Each column is one or more datasets named after it, laid out by its type's codec
(:mod:`videotk.formats.codecs`; e.g. ``frames`` and ``frames.row_splits`` for ``list<binary>``);
the file attribute ``videotk.schema`` holds the versioned schema JSON.
"""

from __future__ import annotations

import os
from typing import Iterator

import h5py

from .base import ShardReader, ShardWriter
from .schema import parse_schema_json, schema_json

SCHEMA_ATTR = "videotk.schema"
FLUSH_ROWS = 64
FLUSH_BYTES = 64 << 20
READ_BLOCK = 64


class HDF5ShardWriter(ShardWriter):
    """Appends records to resizable, chunked datasets every ``FLUSH_ROWS`` records (or ``FLUSH_BYTES``)."""

    flush_rows = FLUSH_ROWS
    flush_bytes = FLUSH_BYTES

    def __init__(self, path, kind, columns):
        super().__init__(path, kind, columns)
        self._file = h5py.File(self.tmp_path, "w", libver="latest")
        self._file.attrs[SCHEMA_ATTR] = schema_json(kind, columns)
        for name, codec in self._codecs:
            codec.h5_create(self._file, name)

    def _write_batch(self, batch: dict[str, list]) -> None:
        for name, codec in self._codecs:
            codec.h5_append(self._file, name, batch[name])

    def _close(self, flush: bool = True) -> None:
        if self._file is None:
            return
        try:
            if flush:
                self._flush()
        finally:
            self._file.close()
            self._file = None


class HDF5ShardReader(ShardReader):
    """Reads blocks of ``READ_BLOCK`` records; opens the file lazily in each process (safe across
    data worker forks)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self.kind, self.columns = parse_schema_json(self._h5.attrs[SCHEMA_ATTR])
        self._codecs = [(c.name, c.codec) for c in self.columns]
        first = self.columns[0]
        self._rows = first.codec.h5_rows(self._h5, first.name)
        self._cached: tuple[int, list[dict]] | None = None

    @property
    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r", locking=False)
            self._pid = os.getpid()
            self._cached = None
        return self._file

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._cached = None, None

    def read(self, index: int) -> dict:
        if not 0 <= index < self._rows:
            raise IndexError(f"{self.path}: row {index} out of range (0..{self._rows - 1})")
        block = index // READ_BLOCK
        if self._cached is None or self._cached[0] != block:
            start = block * READ_BLOCK
            self._cached = (block, self._read_block(start, min(start + READ_BLOCK, self._rows)))
        return self._cached[1][index % READ_BLOCK]

    def read_column(self, name: str) -> list:
        return self.codec(name).h5_read(self._h5, name, 0, self._rows)

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, self._rows, READ_BLOCK):
            yield from self._read_block(start, min(start + READ_BLOCK, self._rows))

    def _read_block(self, start: int, stop: int) -> list[dict]:
        columns = {name: codec.h5_read(self._h5, name, start, stop) for name, codec in self._codecs}
        return [{name: values[i] for name, values in columns.items()} for i in range(stop - start)]
