"""Parquet shards: one column per record key, row groups of a few MiB for cheap random access.

Each column is encoded by its type's codec (:mod:`videotk.formats.codecs`); the file metadata key
``videotk.schema`` holds the versioned schema JSON.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from itertools import accumulate
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .base import HashingFile, ShardReader, ShardWriter
from .schema import Column, parse_schema_json, schema_json

SCHEMA_KEY = b"videotk.schema"
ROW_GROUP_BYTES = 4 << 20
ROW_GROUP_ROWS = 1024


def arrow_schema(kind: str, columns: tuple[Column, ...]) -> pa.Schema:
    fields = [pa.field(c.name, c.codec.arrow_type, nullable=False) for c in columns]
    return pa.schema(fields, metadata={SCHEMA_KEY: schema_json(kind, columns)})


def _leaves(path: str, type_: pa.DataType) -> list[str]:
    """The Parquet leaf columns of an Arrow column, as Parquet names them (``frames.list.element``)."""
    if pa.types.is_list(type_):
        return _leaves(f"{path}.list.element", type_.value_type)
    if pa.types.is_struct(type_):
        return [leaf for field in type_ for leaf in _leaves(f"{path}.{field.name}", field.type)]
    return [path]


class ParquetShardWriter(ShardWriter):
    """Buffers records and flushes a row group every ``ROW_GROUP_BYTES`` (or ``ROW_GROUP_ROWS``)."""

    flush_rows = ROW_GROUP_ROWS

    def __init__(self, path, kind, columns, *, row_group_bytes: int = ROW_GROUP_BYTES):
        super().__init__(path, kind, columns)
        self.flush_bytes = row_group_bytes
        self._schema = arrow_schema(kind, columns)
        leaves = {c.name: _leaves(c.name, c.codec.arrow_type) for c in columns}
        plain = [leaf for c in columns if c.codec.compressed for leaf in leaves[c.name]]
        self._sink = HashingFile(self.tmp_path)
        self._writer = pq.ParquetWriter(
            self._sink,
            self._schema,
            compression={leaf: ("snappy" if leaf in plain else "none") for c in columns for leaf in leaves[c.name]},
            use_dictionary=plain,
            write_statistics=plain,
        )

    def _write_batch(self, batch: dict[str, list]) -> None:
        arrays = [codec.to_arrow(batch[name]) for name, codec in self._codecs]
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        self._writer.write_table(table, row_group_size=table.num_rows)

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
        self._codecs = [(c.name, c.codec) for c in self.columns]
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
        codec = self.codec(name)
        table = self._parquet.read(columns=[name])
        return codec.from_arrow(table.column(name).combine_chunks())

    def __iter__(self) -> Iterator[dict]:
        for group in range(len(self._starts) - 1):
            values = self._group(group)
            names = list(values)
            for row in zip(*values.values()):
                yield dict(zip(names, row))

    def _group(self, group: int) -> dict[str, list]:
        if self._cached is None or self._cached[0] != group:
            table = self._parquet.read_row_group(group, use_threads=False)
            values = {name: codec.from_arrow(table.column(name).combine_chunks()) for name, codec in self._codecs}
            self._cached = (group, values)
        return self._cached[1]
