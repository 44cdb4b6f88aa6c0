"""``BinaryList``: a ``list<binary>`` value handed out as views of one row group's buffer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
