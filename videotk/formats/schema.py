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
``list<binary>``   a sequence of ``bytes``: a ``list``, or from Parquet a :class:`BinaryList`
=================  ==========================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


class BinaryList(Sequence):
    """A read-only ``list<binary>`` value over one shared buffer: item ``i`` is the bytes
    ``data[offsets[i] : offsets[i + 1]]``.

    A Kinetics record holds hundreds of JPEGs of which a clip sampler decodes a handful; making a
    ``bytes`` object of every one costs more than reading them. This hands out the reader's buffer
    instead and copies an item only when it is asked for. Slices are ``BinaryList`` views; the
    value equals any sequence of the same bytes; it pickles as a plain ``list`` of ``bytes``. It
    keeps the whole buffer (one Parquet row group) alive while it lives.
    """

    __slots__ = ("_data", "_offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        if offsets.ndim != 1 or offsets.size < 1:
            raise ValueError(f"BinaryList needs at least one offset, got shape {offsets.shape}")
        self._data, self._offsets = data, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return BinaryList(self._data, self._offsets[start : max(start, stop) + 1])
            return [self[i] for i in range(start, stop, step)]
        return self.view(index).tobytes()

    def view(self, index: int) -> np.ndarray:
        """Item ``index`` as a read-only uint8 array over the buffer (no copy)."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"item {index} out of range for {count} items")
        index %= count
        return self._data[self._offsets[index] : self._offsets[index + 1]]

    @property
    def nbytes(self) -> int:
        """Total bytes of the items."""
        return int(self._offsets[-1] - self._offsets[0])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes, bytearray)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __repr__(self) -> str:
        return f"BinaryList({len(self)} items, {self.nbytes} bytes)"

    def __reduce__(self):
        return list, (list(self),)


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
