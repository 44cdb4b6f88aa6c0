"""The cache: column contracts, Parquet / HDF5 shards, manifest, errors log and ``open_cache``.

This package imports nothing else from videotk, nor Paddle or Dask.
"""

from .cache import Cache, ShardProblem, open_cache, verify_cache
from .manifest import CacheError, read_errors, read_manifest
from .schema import BinaryList, Column, kinetics_columns, youtube8m_columns
from .shard import ShardInfo, open_shard_reader, open_shard_writer, shard_name

__all__ = [
    "BinaryList",
    "Cache",
    "CacheError",
    "Column",
    "ShardInfo",
    "ShardProblem",
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
