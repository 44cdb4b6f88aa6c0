"""Parquet shards: one column per record key, row groups of a few MiB for cheap random access."""

from __future__ import annotations

import os
from bisect import bisect_right
from itertools import accumulate
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import BinaryList, Column, parse_schema_json, schema_json
from .shard import HashingFile, ShardReader, ShardWriter

SCHEMA_KEY = b"videotk.schema"
ROW_GROUP_BYTES = 4 << 20
ROW_GROUP_ROWS = 1024

_ARROW_TYPES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "float32": pa.float32(),
    "binary": pa.binary(),
    "list<int32>": pa.list_(pa.int32()),
    "list<float32>": pa.list_(pa.float32()),
    "list<binary>": pa.list_(pa.binary()),
}
_NUMPY_ITEMS = {"list<int32>": np.int32, "list<float32>": np.float32}
_OPAQUE = ("binary", "list<binary>")


def arrow_schema(kind: str, columns: tuple[Column, ...]) -> pa.Schema:
    fields = [pa.field(c.name, _ARROW_TYPES[c.type], nullable=False) for c in columns]
    return pa.schema(fields, metadata={SCHEMA_KEY: schema_json(kind, columns)})


def _nbytes(value, type_: str) -> int:
    if type_ == "list<binary>":
        return sum(map(len, value))
    if type_ in ("int32", "float32"):
        return 4
    return len(value) * (4 if type_ in _NUMPY_ITEMS else 1)


def _arrow_array(values: list, type_: str) -> pa.Array:
    if type_ in _NUMPY_ITEMS:
        items = [np.asarray(v, dtype=_NUMPY_ITEMS[type_]) for v in values]
        offsets = np.zeros(len(items) + 1, dtype=np.int32)
        np.cumsum([len(v) for v in items], out=offsets[1:])
        flat = np.concatenate(items) if items else np.zeros(0, _NUMPY_ITEMS[type_])
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
    if type_ == "list<binary>":
        offsets = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum([len(v) for v in values], out=offsets[1:])
        flat = pa.array([item for v in values for item in v], type=pa.binary())
        return pa.ListArray.from_arrays(pa.array(offsets), flat)
    return pa.array(values, type=_ARROW_TYPES[type_])


class ParquetShardWriter(ShardWriter):
    """Buffers records and flushes a row group every ``ROW_GROUP_BYTES`` (or ``ROW_GROUP_ROWS``)."""

    def __init__(self, path, kind, columns, *, row_group_bytes: int = ROW_GROUP_BYTES):
        super().__init__(path, kind, columns)
        self._schema = arrow_schema(kind, columns)
        plain = [c.name for c in columns if c.type not in _OPAQUE]
        self._sink = HashingFile(self.tmp_path)
        self._writer = pq.ParquetWriter(
            self._sink,
            self._schema,
            compression={c.name: ("none" if c.type in _OPAQUE else "snappy") for c in columns},
            use_dictionary=plain,
            write_statistics=plain,
        )
        self._row_group_bytes = row_group_bytes
        self._buffer: dict[str, list] = {c.name: [] for c in columns}
        self._buffered_bytes = 0

    def _write(self, record: dict) -> None:
        for c in self.columns:
            value = record[c.name]
            self._buffer[c.name].append(value)
            self._buffered_bytes += _nbytes(value, c.type)
        if self._buffered_bytes >= self._row_group_bytes or len(self._buffer[self.columns[0].name]) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        rows = len(self._buffer[self.columns[0].name])
        if rows == 0:
            return
        arrays = [_arrow_array(self._buffer[c.name], c.type) for c in self.columns]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema), row_group_size=rows)
        self._buffer = {c.name: [] for c in self.columns}
        self._buffered_bytes = 0

    def _close(self, flush: bool = True) -> str | None:
        if self._writer is None:
            return None
        try:
            if flush:
                self._flush()
        finally:
            self._writer.close()
            self._writer = None
            self._sink.close()
        return self._sink.hexdigest()


def _python_values(array: pa.Array, type_: str) -> list:
    """One row group's column as a list of record values (see :mod:`videotk.formats.schema`)."""
    if type_ in _NUMPY_ITEMS:
        offsets = array.offsets.to_numpy()
        flat = array.values.to_numpy(zero_copy_only=False)
        return [flat[offsets[i] : offsets[i + 1]].copy() for i in range(len(array))]
    if type_ == "list<binary>":
        lists = array.offsets.to_numpy()
        items = array.values  # the binary child; its offsets index its (unsliced) data buffer
        _, offsets_buffer, data_buffer = items.buffers()
        offsets = np.frombuffer(offsets_buffer, np.int32)[items.offset : items.offset + len(items) + 1]
        data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
        data.flags.writeable = False  # shared by every record of the row group
        return [BinaryList(data, offsets[lists[i] : lists[i + 1] + 1]) for i in range(len(array))]
    return array.to_pylist()


class ParquetShardReader(ShardReader):
    """Reads one row group at a time and keeps the last one, so iteration and nearby reads are cheap."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = pq.ParquetFile(self.path)
        meta = self._file.metadata
        schema_text = (self._file.schema_arrow.metadata or {}).get(SCHEMA_KEY)
        if schema_text is None:
            raise ValueError(f"{self.path}: Parquet file without videotk schema metadata")
        self.kind, self.columns = parse_schema_json(schema_text)
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self._starts = [0, *accumulate(sizes)]
        self._cached: tuple[int, dict[str, list]] | None = None

    def __len__(self) -> int:
        return self._starts[-1]

    def read(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: row {index} out of range (0..{len(self) - 1})")
        group = bisect_right(self._starts, index) - 1
        values = self._group(group)
        row = index - self._starts[group]
        return {name: column[row] for name, column in values.items()}

    def close(self) -> None:
        self._file.close()
        self._file, self._cached = None, None

    @property
    def _parquet(self) -> pq.ParquetFile:
        if self._file is None:
            self._file = pq.ParquetFile(self.path)
        return self._file

    def read_column(self, name: str) -> list:
        column = next(c for c in self.columns if c.name == name)
        table = self._parquet.read(columns=[name])
        return _python_values(table.column(name).combine_chunks(), column.type)

    def __iter__(self) -> Iterator[dict]:
        for group in range(len(self._starts) - 1):
            values = self._group(group)
            names = list(values)
            for row in zip(*values.values()):
                yield dict(zip(names, row))

    def _group(self, group: int) -> dict[str, list]:
        if self._cached is None or self._cached[0] != group:
            table = self._parquet.read_row_group(group, use_threads=False)
            values = {c.name: _python_values(table.column(c.name).combine_chunks(), c.type) for c in self.columns}
            self._cached = (group, values)
        return self._cached[1]
