"""The cache: column types and contracts, Parquet / HDF5 shards, manifest, errors log, writing a
cache folder, ``open_cache`` and ``check_shards``.

This package imports nothing else from videotk, nor Paddle or Dask.
"""

from .base import ShardInfo
from .binary_list import BinaryList
from .cache import Cache, ShardProblem, check_shards, open_cache, verify_cache
from .codecs import ColumnValueError
from .manifest import CacheError, read_errors, read_manifest
from .schema import Column, kinetics_columns, youtube8m_columns
from .shard import open_shard_reader, open_shard_writer, shard_name

__all__ = [
    "BinaryList",
    "Cache",
    "CacheError",
    "Column",
    "ColumnValueError",
    "ShardInfo",
    "ShardProblem",
    "check_shards",
    "kinetics_columns",
    "open_cache",
    "open_shard_reader",
    "open_shard_writer",
    "read_errors",
    "read_manifest",
    "shard_name",
    "verify_cache",
    "youtube8m_columns",
]
