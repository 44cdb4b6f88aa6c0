"""Column contracts of every cache kind, and the column types they are made of.

A record is a plain dict whose keys are column names. Column types and the value a reader
returns for each (how each is stored is in the table of :mod:`videotk.formats.codecs`):

==========================  ===========================================================
type                        value in a record
==========================  ===========================================================
``string``                  ``str``
``int32``, ``int64``        ``int``
``float32``, ``float64``    ``float``
``binary``                  ``bytes``
``list<int32>``             ``np.ndarray`` of int32, shape ``[L]``
``list<float32>``           ``np.ndarray`` of float32, shape ``[L]``
``list<binary>``            a sequence of ``bytes``: a ``list``, or from Parquet a :class:`BinaryList`
``list<string>``            a ``list`` of ``str``
``tensor<D>[d1,...,dk]``    ``np.ndarray`` of dtype ``D`` and rank k (see below)
``segments``                ``np.ndarray`` of float32, shape ``[K, 2]``: (start, end) in seconds
==========================  ===========================================================

Tensors: ``D`` is float16, float32, float64, uint8, int32 or int64; each ``d`` is a whole number,
or ``?`` where the size varies per record: ``tensor<float32>[?,1024]`` holds ``[T, 1024]`` frame
features, ``tensor<uint8>[?,?,?,3]`` ``[T, H, W, 3]`` frames. From Parquet a tensor is a read-only
view of the row group's buffer (no copy); from HDF5 a fresh array.

Writers take the value a reader returns; besides, scalars take any number of their kind,
``list<int32>`` / ``list<float32>`` any 1-D sequence of numbers that converts without changing
kind, and ``segments`` a ``[K, 2]`` array or a list of ``[start, end]`` pairs (K may be 0). A value
of the wrong type, dtype, rank or shape is refused with an error naming the column.

Layouts. Parquet: scalars, ``string`` and ``binary`` are columns of the same Arrow type; lists are
``list<item>``; a tensor is ``struct<shape: list<int32>, data: list<D>>`` with the data flattened
row-major, and ``segments`` is stored as ``tensor<float32>[?,2]``. HDF5 (``N`` records, datasets
named after the column): scalars ``[N]``; ``string``, ``binary``, ``list<int32>`` and
``list<float32>`` variable-length ``[N]``; ``list<binary>`` and ``list<string>`` one dataset of
every record's items one after the other plus ``<name>.row_splits`` int64 ``[N + 1]`` (record
``i`` owns items ``row_splits[i]:row_splits[i + 1]``); a tensor its flattened data
``[total elements]``, ``<name>.row_splits`` (element offsets) and ``<name>.shapes`` int64
``[N, k]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from .codecs import Codec, codec_for

SCHEMA_VERSION = 1

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Column:
    """One named, typed column of a cache; ``type`` is checked (and spelled canonically) on creation."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"column name {self.name!r}: use letters, digits and underscores")
        try:
            object.__setattr__(self, "type", codec_for(self.type).name)
        except ValueError as exc:
            raise ValueError(f"column {self.name!r}: {exc}") from None

    @property
    def codec(self) -> Codec:
        return codec_for(self.type)


def _columns(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, type_) for name, type_ in pairs)


YOUTUBE8M_FRAME = _columns(
    ("id", "string"),
    ("labels", "list<int32>"),
    ("num_frames", "int32"),
    ("rgb", "binary"),
    ("audio", "binary"),
)
YOUTUBE8M_SEGMENTS = _columns(
    ("segment_start_times", "list<int32>"),
    ("segment_end_times", "list<int32>"),
    ("segment_labels", "list<int32>"),
    ("segment_scores", "list<float32>"),
)
YOUTUBE8M_VIDEO = _columns(
    ("id", "string"),
    ("labels", "list<int32>"),
    ("mean_rgb", "list<float32>"),
    ("mean_audio", "list<float32>"),
)
KINETICS_META = _columns(
    ("id", "string"),
    ("label", "int32"),
    ("label_name", "string"),
    ("fps", "float32"),
    ("num_frames", "int32"),
    ("height", "int32"),
    ("width", "int32"),
)


def youtube8m_columns(level: str, *, segments: bool = False) -> tuple[Column, ...]:
    """Columns of a YouTube-8M cache: ``level`` is ``"frame"`` or ``"video"``."""
    if level == "frame":
        return YOUTUBE8M_FRAME + (YOUTUBE8M_SEGMENTS if segments else ())
    if level == "video":
        return YOUTUBE8M_VIDEO
    raise ValueError(f"unknown YouTube-8M level {level!r}; expected 'frame' or 'video'")


def kinetics_columns(codec: str) -> tuple[Column, ...]:
    """Columns of a Kinetics cache: ``frames`` is one JPEG per frame, or one raw ``[T, H, W, 3]`` blob."""
    if codec == "jpeg":
        return KINETICS_META + (Column("frames", "list<binary>"),)
    if codec == "raw":
        return KINETICS_META + (Column("frames", "binary"),)
    raise ValueError(f"unknown codec {codec!r}; expected 'jpeg' or 'raw'")


def columns_to_json(columns: tuple[Column, ...] | list[Column]) -> list[dict]:
    return [{"name": c.name, "type": c.type} for c in columns]


def columns_from_json(items: list[dict]) -> tuple[Column, ...]:
    return tuple(Column(item["name"], item["type"]) for item in items)


def schema_json(kind: str, columns: tuple[Column, ...]) -> str:
    """The versioned schema stored inside every shard's metadata."""
    return json.dumps({"schema_version": SCHEMA_VERSION, "kind": kind, "columns": columns_to_json(columns)})


def parse_schema_json(text: str | bytes) -> tuple[str, tuple[Column, ...]]:
    """Inverse of :func:`schema_json`: ``(kind, columns)``."""
    data = json.loads(text)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"schema version {data.get('schema_version')!r} is not supported (this videotk reads {SCHEMA_VERSION})"
        )
    return data["kind"], columns_from_json(data["columns"])


_YT8M_SCALE = np.float32(4.0 / 255.0)
_YT8M_BIAS = np.float32(4.0 / 512.0 - 2.0)


def dequantize_youtube8m(codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 features ``x = q * 4/255 + 4/512 - 2`` of YouTube-8M uint8 codes ``q`` (any shape).

    The formula is the published one (values -1.992 .. 2.008; the /512 is as published). ``out``: a
    float32 array of the codes' shape to write into.
    """
    out = np.multiply(codes, _YT8M_SCALE, out=out, dtype=np.float32)
    out += _YT8M_BIAS
    return out


ACTIVITYNET_META = _columns(
    ("id", "string"),
    ("subset", "string"),
    ("duration", "float64"),
    ("duration_frame", "int64"),
    ("feature_frame", "int64"),
)


def activitynet_columns(feature_dim: int, tscale: int | None) -> tuple[Column, ...]:
    """Columns of an ActivityNet cache: one record per video, ``features`` ``[T, feature_dim]``
    (T = ``tscale`` for rescaled snippet features, per video when ``tscale`` is None), ground-truth
    ``segments`` ``[K, 2]`` in seconds and their ``labels`` ``[K]`` (indices into the class list)."""
    rows = "?" if tscale is None else str(tscale)
    return ACTIVITYNET_META + _columns(
        ("features", f"tensor<float32>[{rows},{feature_dim}]"),
        ("segments", "segments"),
        ("labels", "list<int32>"),
    )


def anet_captions_columns(feature_dim: int) -> tuple[Column, ...]:
    """Columns of an ActivityNet Captions cache: one record per video, ``features`` ``[T, feature_dim]``,
    and per event ``k`` of ``segments`` its caption (raw, tokenised, as word ids) and reference set."""
    return _columns(
        ("id", "string"),
        ("subset", "string"),
        ("duration", "float64"),
        ("num_frames", "int32"),
        ("features", f"tensor<float32>[?,{feature_dim}]"),
        ("segments", "segments"),
        ("reference", "list<int32>"),
        ("sentences", "list<string>"),
        ("tokens", "list<string>"),
        ("caption_ids", "list<int32>"),
        ("caption_lengths", "list<int32>"),
    )


def tacos_columns(feature_dim: int, sentence_dim: int) -> tuple[Column, ...]:
    """Columns of a TACoS cache: one record per movie, its sliding windows (frame spans and
    features ``[W, feature_dim]``) and its sentences (frame spans and vectors ``[S, sentence_dim]``)."""
    return _columns(
        ("id", "string"),
        ("subset", "string"),
        ("num_frames", "int32"),
        ("windows", "tensor<int32>[?,2]"),
        ("window_features", f"tensor<float32>[?,{feature_dim}]"),
        ("sentence_spans", "tensor<int32>[?,2]"),
        ("sentence_vectors", f"tensor<float32>[?,{sentence_dim}]"),
        ("sentences", "list<string>"),
    )
