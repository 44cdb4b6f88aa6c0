"""HDF5 shards: the same records under the same names as the Parquet shards.

Layout of one shard (``N`` records):

- ``string``, ``int32``, ``float32`` columns: a dataset ``[N]`` named after the column.
- ``binary``, ``list<int32>``, ``list<float32>`` columns: a variable-length dataset ``[N]`` (uint8,
  int32 or float32 items) named after the column.
- ``list<binary>`` columns (one JPEG per frame): a variable-length uint8 dataset ``[total items]``
  named after the column, and ``<name>.row_splits`` int64 ``[N + 1]``: record ``i`` owns items
  ``row_splits[i]:row_splits[i + 1]``.
- The file attribute ``videotk.schema`` holds the versioned schema JSON.
"""

from __future__ import annotations

import os
from typing import Iterator

import h5py
import numpy as np

from .schema import Column, parse_schema_json, schema_json
from .shard import ShardReader, ShardWriter

SCHEMA_ATTR = "videotk.schema"
SPLITS = ".row_splits"
FLUSH_ROWS = 64
READ_BLOCK = 64

_DTYPES = {
    "string": h5py.string_dtype("utf-8"),
    "int32": np.dtype(np.int32),
    "float32": np.dtype(np.float32),
    "binary": h5py.vlen_dtype(np.uint8),
    "list<int32>": h5py.vlen_dtype(np.int32),
    "list<float32>": h5py.vlen_dtype(np.float32),
    "list<binary>": h5py.vlen_dtype(np.uint8),
}


def _as_items(values: list, type_: str) -> np.ndarray:
    """A batch of column values as the array h5py writes: object arrays for variable-length types."""
    if type_ in ("string", "int32", "float32"):
        return np.asarray(values, dtype=_DTYPES[type_])
    if type_ == "list<binary>":
        values = [item for v in values for item in v]
    out = np.empty(len(values), dtype=object)
    base = _DTYPES[type_].metadata["vlen"]
    for i, v in enumerate(values):
        out[i] = np.frombuffer(v, dtype=np.uint8) if isinstance(v, (bytes, bytearray, memoryview)) else np.asarray(v, base)
    return out


def _append(dataset: h5py.Dataset, items: np.ndarray) -> None:
    start, count = dataset.shape[0], len(items)
    dataset.resize((start + count,))
    if count == 0:
        return
    if h5py.check_vlen_dtype(dataset.dtype) in (None, str, bytes):
        dataset[start:] = items
        return
    # h5py's high-level setter reads a batch of equal-length arrays as one 2-D array: write directly
    file_space = dataset.id.get_space()
    file_space.select_hyperslab((start,), (count,))
    dataset.id.write(h5py.h5s.create_simple((count,)), file_space, items, mtype=h5py.h5t.py_create(dataset.dtype))


class HDF5ShardWriter(ShardWriter):
    """Appends records to resizable, chunked datasets every ``FLUSH_ROWS`` records."""

    def __init__(self, path, kind, columns):
        super().__init__(path, kind, columns)
        self._file = h5py.File(self.tmp_path, "w", libver="latest")
        self._file.attrs[SCHEMA_ATTR] = schema_json(kind, columns)
        for c in columns:
            self._file.create_dataset(c.name, shape=(0,), maxshape=(None,), dtype=_DTYPES[c.type], chunks=(FLUSH_ROWS,))
            if c.type == "list<binary>":
                splits = self._file.create_dataset(c.name + SPLITS, shape=(1,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
                splits[0] = 0
        self._buffer: dict[str, list] = {c.name: [] for c in columns}

    def _write(self, record: dict) -> None:
        for c in self.columns:
            self._buffer[c.name].append(record[c.name])
        if len(self._buffer[self.columns[0].name]) >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        for c in self.columns:
            values = self._buffer[c.name]
            if c.type == "list<binary>":
                splits = self._file[c.name + SPLITS]
                _append(splits, splits[-1] + np.cumsum([len(v) for v in values], dtype=np.int64))
            _append(self._file[c.name], _as_items(values, c.type))
        self._buffer = {c.name: [] for c in self.columns}

    def _close(self, flush: bool = True) -> None:
        if self._file is None:
            return
        try:
            if flush:
                self._flush()
        finally:
            self._file.close()
            self._file = None


def _record_value(raw, type_: str):
    if type_ == "string":
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if type_ in ("int32", "float32"):
        return raw.item()
    if type_ == "binary":
        return raw.tobytes()
    return raw.copy()


class HDF5ShardReader(ShardReader):
    """Opens the file lazily in each process (safe across DataLoader worker forks)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self.kind, self.columns = parse_schema_json(self._h5.attrs[SCHEMA_ATTR])
        self._rows = self._h5[self.columns[0].name].shape[0]
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
        column = next(c for c in self.columns if c.name == name)
        return self._column_block(column, 0, self._rows)

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, self._rows, READ_BLOCK):
            yield from self._read_block(start, min(start + READ_BLOCK, self._rows))

    def _read_block(self, start: int, stop: int) -> list[dict]:
        columns = {c.name: self._column_block(c, start, stop) for c in self.columns}
        return [{name: values[i] for name, values in columns.items()} for i in range(stop - start)]

    def _column_block(self, column: Column, start: int, stop: int) -> list:
        dataset = self._h5[column.name]
        if column.type == "list<binary>":
            splits = self._h5[column.name + SPLITS][start : stop + 1]
            items = [item.tobytes() for item in dataset[splits[0] : splits[-1]]]
            return [items[a - splits[0] : b - splits[0]] for a, b in zip(splits[:-1], splits[1:])]
        return [_record_value(raw, column.type) for raw in dataset[start:stop]]
