"""TFRecord framing: stream the records of a file and check their crc32c, without TensorFlow.

A record on disk is: uint64 LE data length, uint32 LE masked crc32c of those 8 bytes,
the data, uint32 LE masked crc32c of the data.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Callable, Iterator

import crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


class SourceError(Exception):
    """An input that could not be read: which `source` (path), which `item` in it, and why.

    `source` and `item` may be filled in later by a caller that knows them; str() is built
    from the current attributes, e.g. "train0001.tfrecord record 17: data crc mismatch".
    """

    def __init__(self, reason: str, *, source: str | None = None, item: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.source = source
        self.item = item

    def __reduce__(self):
        return (self.__class__, (self.reason,), self.__dict__)

    def where(self) -> str:
        """The location part of the message, e.g. "train0001.tfrecord record 17"."""
        parts = [self.source if self.source is not None else "<unknown source>"]
        if self.item is not None:
            parts.append(f"record {self.item}")
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"


class TFRecordError(SourceError):
    """A damaged TFRecord file; `offset` is the byte offset where the bad record starts."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        item: int | None = None,
        offset: int | None = None,
    ):
        super().__init__(reason, source=source, item=item)
        self.offset = offset
        self.length: int | None = None  # set when only the data is damaged: the next record is findable

    def where(self) -> str:
        if self.offset is None:
            return super().where()
        return f"{super().where()} (offset {self.offset})"


def masked_crc32c(data: bytes) -> int:
    """The TFRecord masked crc32c of `data`."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(
    path: str | os.PathLike,
    *,
    verify: bool = True,
    on_bad_data: Callable[[TFRecordError], None] | None = None,
) -> Iterator[bytes]:
    """Yield the data of each record of the TFRecord file at `path`, in order.

    Only one record is held in memory at a time; records are read straight into their bytes
    objects, without a buffer in between (one copy fewer: a record is far larger than a buffer). With `verify`, both crcs of every record are
    checked. On damage (bad crc, file ending inside a header or a record) every good record
    before it is yielded first, then `TFRecordError` is raised naming the record and its offset.
    A record whose data crc fails but whose length field is intact can be stepped over: with
    `on_bad_data`, it is handed the error and reading goes on with the next record.
    An empty file yields nothing.
    """
    source = os.fspath(path)
    with open(source, "rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        index = offset = 0
        while offset < size:
            try:
                data = _read_record(stream, size - offset, verify)
                length = len(data)
            except TFRecordError as error:
                error.source, error.item, error.offset = source, index, offset
                if error.length is None or on_bad_data is None:
                    raise
                on_bad_data(error)
                data, length = None, error.length
            if data is not None:
                yield data
            index += 1
            offset += _HEADER.size + length + _FOOTER.size


def _read_record(stream: BinaryIO, remaining: int, verify: bool) -> bytes:
    """The data of the record at the stream position, `remaining` bytes before the end of file."""
    if remaining < _HEADER.size:
        raise TFRecordError(
            f"truncated header: file ends {remaining} bytes into a {_HEADER.size}-byte header"
        )
    header = _read_exact(stream, _HEADER.size)
    length, length_crc = _HEADER.unpack(header)
    if verify and masked_crc32c(header[:8]) != length_crc:
        raise TFRecordError("length crc mismatch (damaged length field)")
    body = length + _FOOTER.size
    if _HEADER.size + body > remaining:
        got = remaining - _HEADER.size
        raise TFRecordError(f"truncated data: file ends {got} bytes into a {body}-byte record body")
    data = _read_exact(stream, length)
    footer = _read_exact(stream, _FOOTER.size)
    if verify and masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
        error = TFRecordError("data crc mismatch")
        error.length = length
        raise error
    return data


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes from an unbuffered ``stream`` (whose reads may return fewer); the sizes were
    checked against the file's, so a short read means the file shrank while being read."""
    data = stream.read(size)
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise TFRecordError(f"file ended {size - len(data)} bytes early while being read")
        data += more
    return data
