"""Column contracts of every cache kind.

A record is a plain dict whose keys are column names. Column types and the Python values a reader
returns for them:

=================  ==========================================
type               value in a record
=================  ==========================================
``string``         ``str``
``int32``          ``int``
``float32``        ``float``
``binary``         ``bytes``
``list<int32>``    ``np.ndarray`` of int32, shape ``[L]``
``list<float32>``  ``np.ndarray`` of float32, shape ``[L]``
``list<binary>``   ``list[bytes]``
=================  ==========================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 1

TYPES = ("string", "int32", "float32", "binary", "list<int32>", "list<float32>", "list<binary>")


@dataclass(frozen=True)
class Column:
    """One named, typed column of a cache."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; expected one of {TYPES}")

    @property
    def is_list(self) -> bool:
        return self.type.startswith("list<")


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
