"""Shard files: the one naming rule, and writers and readers chosen by the file's extension."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import ShardReader, ShardWriter
from .hdf5 import HDF5ShardReader, HDF5ShardWriter
from .parquet import ParquetShardReader, ParquetShardWriter
from .schema import Column

FORMATS = {"parquet": ".parquet", "hdf5": ".h5"}
_WRITERS = {"parquet": ParquetShardWriter, "hdf5": HDF5ShardWriter}
_READERS = {"parquet": ParquetShardReader, "hdf5": HDF5ShardReader}

#: the names :func:`shard_name` gives, and their half-written temporaries
SHARD_FILE = re.compile(r"part-\d{5}-[0-9A-Za-z]+(?:\.parquet|\.h5)")


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


def open_shard_writer(path: str | os.PathLike, kind: str, columns: tuple[Column, ...]) -> ShardWriter:
    """A writer for ``path``; the format follows the file's extension."""
    return _WRITERS[format_of(path)](path, kind, columns)


def open_shard_reader(path: str | os.PathLike) -> ShardReader:
    """A reader for ``path``; the format follows the file's extension."""
    return _READERS[format_of(path)](path)
