"""The column types of a cache: one table, ``CODECS``, mapping each type to the check of a written
value, its Parquet encoding and its HDF5 encoding.

A new type of an existing layout (say ``tensor<int16>``) is one more entry in ``CODECS``; a new
layout is one ``Codec`` subclass, which holds both formats side by side. The shard writers and
readers (``parquet.py``, ``hdf5.py``) never look at a type name. The types, their record values
and their layouts are listed in :mod:`videotk.formats.schema`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import h5py
import numpy as np
import pyarrow as pa

from .binary_list import BinaryList

SPLITS = ".row_splits"
SHAPES = ".shapes"
ROW_CHUNK = 64
SPLITS_CHUNK = 1024
DATA_CHUNK = 1 << 16
BYTES_LIKE = (bytes, bytearray, memoryview)


class ColumnValueError(ValueError):
    """A record value that does not fit its column's type."""


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} ndarray of shape {list(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


class Codec:
    """How the values of one column type are checked and stored in both formats.

    ``compressed``: Parquet pages get snappy, dictionaries and statistics (small, repetitive
    values); otherwise they are stored plain (JPEGs, quantized features, dense numbers).
    """

    name: str
    arrow_type: pa.DataType
    compressed = False

    def shaped(self, dims: tuple[int | None, ...] | None) -> "Codec":
        """This type with the dimensions written after its name, ``[?,1024]``; only tensors take them."""
        if dims is not None:
            raise ValueError(f"column type {self.name} takes no shape")
        return self

    def check(self, value, column: str):
        """``value`` as it is written, or :class:`ColumnValueError` naming ``column`` and what was expected."""
        raise NotImplementedError

    def nbytes(self, value) -> int:
        """About how many bytes a checked value adds to a row group."""
        raise NotImplementedError

    def to_arrow(self, values: list) -> pa.Array:
        raise NotImplementedError

    def from_arrow(self, array: pa.Array) -> list:
        """One row group's column as record values."""
        raise NotImplementedError

    def h5_create(self, file: h5py.File, name: str) -> None:
        raise NotImplementedError

    def h5_append(self, file: h5py.File, name: str, values: list) -> None:
        raise NotImplementedError

    def h5_read(self, file: h5py.File, name: str, start: int, stop: int) -> list:
        """Records ``start:stop`` of the column ``name`` as record values."""
        raise NotImplementedError

    def h5_rows(self, file: h5py.File, name: str) -> int:
        """How many records the column ``name`` holds."""
        return file[name].shape[0]

    def refuse(self, column: str, expected: str, value) -> ColumnValueError:
        return ColumnValueError(f"column {column!r} ({self.name}): expected {expected}, got {_describe(value)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Scalar(Codec):
    """One number per record: Parquet and HDF5 ``[N]`` of the dtype."""

    compressed = True

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.name = self.dtype.name
        self.arrow_type = pa.from_numpy_dtype(self.dtype)
        integer = self.dtype.kind == "i"
        self._types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        self._range = (np.iinfo(self.dtype).min, np.iinfo(self.dtype).max) if integer else None

    def check(self, value, column):
        if isinstance(value, self._types) and not isinstance(value, (bool, np.bool_)):
            if self._range is None or self._range[0] <= value <= self._range[1]:
                return value
        raise self.refuse(column, f"one {self.name} number", value)

    def nbytes(self, value) -> int:
        return self.dtype.itemsize

    def to_arrow(self, values):
        return pa.array(np.asarray(values, dtype=self.dtype))

    def from_arrow(self, array):
        return array.to_pylist()

    def h5_create(self, file, name):
        _h5_new(file, name, self.dtype)

    def h5_append(self, file, name, values):
        _h5_append(file[name], np.asarray(values, dtype=self.dtype))

    def h5_read(self, file, name, start, stop):
        return file[name][start:stop].tolist()


class Variable(Codec):
    """One ``str`` or ``bytes`` value per record, stored as the Arrow type and as the variable-length
    HDF5 dtype of the subclass."""

    h5_dtype: np.dtype

    def nbytes(self, value) -> int:
        return len(value)

    def to_arrow(self, values):
        return pa.array(values, type=self.arrow_type)

    def from_arrow(self, array):
        return array.to_pylist()

    def h5_create(self, file, name):
        _h5_new(file, name, self.h5_dtype)


class Text(Variable):
    """``str``: Parquet ``string``; HDF5 variable-length UTF-8 ``[N]``."""

    name = "string"
    arrow_type = pa.string()
    compressed = True
    h5_dtype = h5py.string_dtype("utf-8")

    def check(self, value, column):
        if isinstance(value, str):
            return value
        raise self.refuse(column, "a str", value)

    def h5_append(self, file, name, values):
        _h5_append(file[name], np.asarray(values, dtype=self.h5_dtype))

    def h5_read(self, file, name, start, stop):
        return file[name].asstr()[start:stop].tolist()


class Blob(Variable):
    """``bytes``: Parquet ``binary``; HDF5 variable-length uint8 ``[N]``."""

    name = "binary"
    arrow_type = pa.binary()
    h5_dtype = h5py.vlen_dtype(np.uint8)

    def check(self, value, column):
        if isinstance(value, bytes):
            return value
        if isinstance(value, BYTES_LIKE):
            return bytes(value)
        raise self.refuse(column, "bytes", value)

    def h5_append(self, file, name, values):
        _h5_append(file[name], _object_array([np.frombuffer(v, dtype=np.uint8) for v in values]))

    def h5_read(self, file, name, start, stop):
        return [raw.tobytes() for raw in file[name][start:stop]]


class NumericList(Codec):
    """A 1-D ``np.ndarray`` ``[L]`` per record: Parquet ``list<dtype>``; HDF5 variable-length ``[N]``.

    Any 1-D sequence of numbers that converts to the dtype without changing kind (or overflowing)
    is accepted.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.name = f"list<{self.dtype.name}>"
        self.arrow_type = pa.list_(pa.from_numpy_dtype(self.dtype))
        self.h5_dtype = h5py.vlen_dtype(self.dtype)

    def check(self, value, column):
        try:
            array = np.asarray(value)
        except ValueError:
            array = None
        if array is not None and array.ndim == 1 and self._converts(array):
            return array.astype(self.dtype, copy=False)
        raise self.refuse(column, f"a 1-D sequence of {self.dtype.name} numbers", value)

    def _converts(self, array: np.ndarray) -> bool:
        if array.size == 0:
            return True
        if array.dtype.kind == "b" or not np.can_cast(array.dtype, self.dtype, "same_kind"):
            return False
        if self.dtype.kind == "i" and array.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            return info.min <= array.min() and array.max() <= info.max
        return True

    def nbytes(self, value) -> int:
        return value.nbytes

    def to_arrow(self, values):
        flat = np.concatenate(values).astype(self.dtype, copy=False) if values else np.zeros(0, self.dtype)
        return pa.ListArray.from_arrays(pa.array(_offsets([len(v) for v in values])), pa.array(flat))

    def from_arrow(self, array):
        offsets = array.offsets.to_numpy()
        flat = array.values.to_numpy(zero_copy_only=False)
        return [flat[offsets[i] : offsets[i + 1]].copy() for i in range(len(array))]

    def h5_create(self, file, name):
        _h5_new(file, name, self.h5_dtype)

    def h5_append(self, file, name, values):
        _h5_append(file[name], _object_array(values))

    def h5_read(self, file, name, start, stop):
        return list(file[name][start:stop])


class ItemList(Codec):
    """A list of ``item`` values per record: Parquet ``list<item>``; HDF5 the items as the
    ``item`` type stores them, ``[total items]``, plus ``<name>.row_splits`` int64 ``[N + 1]``
    (record ``i`` owns items ``row_splits[i]:row_splits[i + 1]``)."""

    def __init__(self, item: Codec):
        self.item = item
        self.name = f"list<{item.name}>"
        self.arrow_type = pa.list_(item.arrow_type)
        self.compressed = item.compressed

    def check(self, value, column):
        if isinstance(value, Sequence) and not isinstance(value, (str, *BYTES_LIKE)):
            try:
                return [self.item.check(v, column) for v in value]
            except ColumnValueError:
                pass
        raise self.refuse(column, f"a list of {self.item.name} values", value)

    def nbytes(self, value) -> int:
        return sum(self.item.nbytes(v) for v in value)

    def to_arrow(self, values):
        offsets = _offsets([len(v) for v in values])
        return pa.ListArray.from_arrays(pa.array(offsets), self.item.to_arrow([v for items in values for v in items]))

    def from_arrow(self, array):
        return array.to_pylist()

    def h5_create(self, file, name):
        self.item.h5_create(file, name)
        _h5_new_splits(file, name)

    def h5_append(self, file, name, values):
        _h5_append_splits(file, name, [len(v) for v in values])
        self.item.h5_append(file, name, [v for items in values for v in items])

    def h5_read(self, file, name, start, stop):
        splits = file[name + SPLITS][start : stop + 1]
        first = int(splits[0])
        items = self.item.h5_read(file, name, first, int(splits[-1]))
        return [items[a - first : b - first] for a, b in zip(splits[:-1], splits[1:])]

    def h5_rows(self, file, name):
        return file[name + SPLITS].shape[0] - 1


class BinaryItems(ItemList):
    """``list<binary>``, read from Parquet as :class:`BinaryList` views of the row group's buffer."""

    def __init__(self):
        super().__init__(Blob())

    def check(self, value, column):
        if isinstance(value, BinaryList):
            return value
        return super().check(value, column)

    def nbytes(self, value) -> int:
        return value.nbytes if isinstance(value, BinaryList) else sum(map(len, value))

    def from_arrow(self, array):
        lists = array.offsets.to_numpy()
        items = array.values  # the binary child; its offsets index its (unsliced) data buffer
        _, offsets_buffer, data_buffer = items.buffers()
        offsets = np.frombuffer(offsets_buffer, np.int32)[items.offset : items.offset + len(items) + 1]
        data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
        data.flags.writeable = False  # shared by every record of the row group
        return [BinaryList(data, offsets[lists[i] : lists[i + 1] + 1]) for i in range(len(array))]


class Tensor(Codec):
    """An ``np.ndarray`` of one dtype per record, of a fixed rank; ``dims`` are its dimensions,
    ``None`` where they vary per record.

    Parquet: ``struct<shape: list<int32>, data: list<dtype>>`` (data flattened row-major), read
    back as read-only views of the row group's buffer. HDF5: ``<name>`` the flattened data of all
    records ``[total elements]``, ``<name>.row_splits`` int64 ``[N + 1]`` (element offsets) and
    ``<name>.shapes`` int64 ``[N, rank]``.
    """

    def __init__(self, dtype, dims: tuple[int | None, ...] | None = None):
        self.dtype = np.dtype(dtype)
        self.dims = dims
        self.name = f"tensor<{self.dtype.name}>" + ("" if dims is None else f"[{_dims_text(dims, ',')}]")
        self.arrow_type = pa.struct([
            pa.field("shape", pa.list_(pa.int32()), nullable=False),
            pa.field("data", pa.list_(pa.from_numpy_dtype(self.dtype)), nullable=False),
        ])

    def shaped(self, dims):
        if dims is None:
            raise ValueError(f"column type {self.name} needs its dimensions, ? where they vary: "
                             f"e.g. {self.name}[?,1024] for [T, 1024]")
        return Tensor(self.dtype, dims)

    def check(self, value, column):
        if isinstance(value, np.ndarray) and value.dtype == self.dtype and self.fits(value.shape):
            return value
        raise self.refuse(column, f"a {self.dtype.name} ndarray of shape [{_dims_text(self.dims, ', ')}]", value)

    def fits(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.dims) and all(d is None or d == s for d, s in zip(self.dims, shape))

    def nbytes(self, value) -> int:
        return value.nbytes

    def _flat(self, values: list) -> np.ndarray:
        return np.concatenate([v.ravel() for v in values]) if values else np.zeros(0, self.dtype)

    def _shapes(self, values: list) -> np.ndarray:
        return np.array([v.shape for v in values], dtype=np.int64).reshape(len(values), len(self.dims))

    def to_arrow(self, values):
        rank = len(self.dims)
        shape = pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32) * rank),
                                         pa.array(self._shapes(values).reshape(-1).astype(np.int32)))
        data = pa.ListArray.from_arrays(pa.array(_offsets([v.size for v in values])), pa.array(self._flat(values)))
        return pa.StructArray.from_arrays([shape, data], fields=list(self.arrow_type))

    def from_arrow(self, array):
        shape, data = array.flatten()
        bounds = shape.offsets.to_numpy()
        shapes = shape.values.to_numpy()[bounds[0] : bounds[-1]].reshape(len(array), len(self.dims))
        offsets, flat = data.offsets.to_numpy(), data.values.to_numpy()  # zero-copy, read-only
        return [flat[offsets[i] : offsets[i + 1]].reshape(shapes[i]) for i in range(len(array))]

    def h5_create(self, file, name):
        _h5_new(file, name, self.dtype, chunk=DATA_CHUNK)
        _h5_new_splits(file, name)
        _h5_new(file, name + SHAPES, np.int64, chunk=SPLITS_CHUNK, shape=(len(self.dims),))

    def h5_append(self, file, name, values):
        _h5_append_splits(file, name, [v.size for v in values])
        _h5_append(file[name + SHAPES], self._shapes(values))
        _h5_append(file[name], self._flat(values))

    def h5_read(self, file, name, start, stop):
        splits = file[name + SPLITS][start : stop + 1]
        shapes = file[name + SHAPES][start:stop]
        first = int(splits[0])
        flat = file[name][first : int(splits[-1])]
        return [flat[a - first : b - first].reshape(shape) for a, b, shape in zip(splits[:-1], splits[1:], shapes)]

    def h5_rows(self, file, name):
        return file[name + SHAPES].shape[0]


class Segments(Tensor):
    """``[start, end]`` pairs per record (seconds), float32 ``[K, 2]``; K may be 0. Any ``[K, 2]``
    array or list of pairs of numbers is accepted (an empty list too); stored as a
    ``tensor<float32>[?,2]`` column."""

    def __init__(self):
        super().__init__(np.float32, (None, 2))
        self.name = "segments"

    shaped = Codec.shaped

    def check(self, value, column):
        try:
            array = np.asarray(value)
        except ValueError:
            array = None
        if array is not None and array.shape in ((0,), (0, 2)):
            return np.zeros((0, 2), np.float32)
        if array is not None and array.dtype.kind in "iuf" and self.fits(array.shape):
            return np.ascontiguousarray(array, dtype=np.float32)
        raise self.refuse(column, "[K, 2] (start, end) pairs of numbers", value)


def _parse_dims(text: str, type_: str) -> tuple[int | None, ...]:
    dims = tuple(part.strip() for part in text.split(","))
    if not text.strip() or not all(d == "?" or d.isdigit() for d in dims):
        raise ValueError(f"column type {type_!r}: dimensions must be ? or whole numbers, comma-separated, e.g. [?,1024]")
    return tuple(None if d == "?" else int(d) for d in dims)


def _dims_text(dims: tuple[int | None, ...], separator: str) -> str:
    return separator.join("?" if d is None else str(d) for d in dims)


def _offsets(lengths: list[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _h5_new(file: h5py.File, name: str, dtype, *, chunk: int = ROW_CHUNK, shape: tuple[int, ...] = ()) -> None:
    file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(chunk, *shape))


def _h5_new_splits(file: h5py.File, name: str) -> None:
    """``<name>.row_splits``, int64 ``[N + 1]``, holding the 0 that starts the first record."""
    _h5_new(file, name + SPLITS, np.int64, chunk=SPLITS_CHUNK)
    _h5_append(file[name + SPLITS], np.zeros(1, np.int64))


def _h5_append_splits(file: h5py.File, name: str, lengths: list[int]) -> None:
    splits = file[name + SPLITS]
    _h5_append(splits, splits[-1] + np.cumsum(lengths, dtype=np.int64))


def _h5_append(dataset: h5py.Dataset, items: np.ndarray) -> None:
    start, count = dataset.shape[0], len(items)
    dataset.resize(start + count, axis=0)
    if count == 0:
        return
    if h5py.check_vlen_dtype(dataset.dtype) in (None, str, bytes):
        dataset[start:] = items
        return
    # h5py's high-level setter reads a batch of equal-length arrays as one 2-D array: write directly
    file_space = dataset.id.get_space()
    file_space.select_hyperslab((start,), (count,))
    dataset.id.write(h5py.h5s.create_simple((count,)), file_space, items, mtype=h5py.h5t.py_create(dataset.dtype))


CODECS: dict[str, Codec] = {codec.name: codec for codec in (
    Scalar(np.int32),
    Scalar(np.int64),
    Scalar(np.float32),
    Scalar(np.float64),
    Text(),
    Blob(),
    NumericList(np.int32),
    NumericList(np.float32),
    BinaryItems(),
    ItemList(Text()),
    Segments(),
    *(Tensor(dtype) for dtype in (np.float16, np.float32, np.float64, np.uint8, np.int32, np.int64)),
)}

_SHAPED = re.compile(r"(?P<base>[^\[\]]+)\[(?P<dims>[^\[\]]*)\]")


@functools.lru_cache(maxsize=None)
def codec_for(type_: str) -> Codec:
    """The codec of a column type as written in a schema: a name of ``CODECS``, tensors with their
    dimensions (``tensor<float32>[?,1024]``)."""
    match = _SHAPED.fullmatch(type_)
    base, dims = (match["base"], _parse_dims(match["dims"], type_)) if match else (type_, None)
    if base not in CODECS:
        raise ValueError(f"unknown column type {type_!r}; expected one of {sorted(CODECS)} "
                         "(tensors with their dimensions, e.g. tensor<float32>[?,1024])")
    return CODECS[base].shaped(dims)
