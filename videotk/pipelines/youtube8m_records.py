"""Parse serialized YouTube-8M records (tf.train.Example / SequenceExample) into dicts.

TensorFlow is not needed: the tf.train messages are declared here with the field numbers and
types of TensorFlow's feature.proto and example.proto, under the package `videotk.tfexample`
in a private descriptor pool, so they never clash with TensorFlow's own classes.

Frame-level records written the usual way (every frame one bytes value of 1024 or 128 bytes)
take a fast path that reads the feature lists straight from the wire format; anything else
falls back to the full protobuf parse, which also explains what is wrong with a bad record.
See docs/parse_paths.md for the measurements behind this.
"""

from __future__ import annotations

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format

from .tfrecord import SourceError

RGB_SIZE = 1024
AUDIO_SIZE = 128
SEGMENT_KEYS = ("segment_start_times", "segment_end_times", "segment_labels", "segment_scores")
LEVELS = ("frame", "video")

_INT32 = np.iinfo(np.int32)
_PACKAGE = "videotk.tfexample"
_SCHEMA = """
name: "videotk/tfexample.proto"
package: "videotk.tfexample"
syntax: "proto3"
message_type {
  name: "BytesList"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_BYTES }
}
message_type {
  name: "FloatList"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_FLOAT options { packed: true } }
}
message_type {
  name: "Int64List"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_INT64 options { packed: true } }
}
message_type {
  name: "Feature"
  field { name: "bytes_list" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.BytesList" oneof_index: 0 }
  field { name: "float_list" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.FloatList" oneof_index: 0 }
  field { name: "int64_list" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.Int64List" oneof_index: 0 }
  oneof_decl { name: "kind" }
}
message_type {
  name: "Features"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.Features.FeatureEntry" }
  nested_type {
    name: "FeatureEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".videotk.tfexample.Feature" }
    options { map_entry: true }
  }
}
message_type {
  name: "FeatureList"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.Feature" }
}
message_type {
  name: "FeatureLists"
  field { name: "feature_list" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.FeatureLists.FeatureListEntry" }
  nested_type {
    name: "FeatureListEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".videotk.tfexample.FeatureList" }
    options { map_entry: true }
  }
}
message_type {
  name: "Example"
  field { name: "features" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.Features" }
}
message_type {
  name: "SequenceExample"
  field { name: "context" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.Features" }
  field { name: "feature_lists" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".videotk.tfexample.FeatureLists" }
}
"""


class RecordError(SourceError):
    """A record that is not the YouTube-8M record asked for; `reason` says what is wrong."""


def _message_class(pool: descriptor_pool.DescriptorPool, name: str) -> type:
    """The generated message class of `videotk.tfexample.<name>` in `pool`."""
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


def _schema_pool() -> descriptor_pool.DescriptorPool:
    """A private descriptor pool holding the tf.train message declarations."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(text_format.Parse(_SCHEMA, descriptor_pb2.FileDescriptorProto()))
    return pool


_POOL = _schema_pool()
_SequenceExample = _message_class(_POOL, "SequenceExample")
_Features = _message_class(_POOL, "Features")


def detect_level(data: bytes) -> str:
    """The level of a record: "frame" for a SequenceExample with feature lists rgb/audio,
    "video" for an Example with mean_rgb/mean_audio; RecordError for anything else."""
    context, lists = _decode(data)
    if "rgb" in lists or "audio" in lists:
        return "frame"
    if "mean_rgb" in context or "mean_audio" in context:
        return "video"
    raise RecordError(
        "neither frame-level (feature_lists rgb/audio) nor video-level (mean_rgb/mean_audio); "
        f"{_keys_found(context, lists)}"
    )


def parse_record(data: bytes, level: str) -> dict:
    """The dict of `parse_frame_level` or `parse_video_level`, chosen by `level`."""
    if level == "frame":
        return parse_frame_level(data)
    if level == "video":
        return parse_video_level(data)
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def parse_frame_level(data: bytes) -> dict:
    """A frame-level record as a dict.

    Keys: `id` str; `labels` int32 [L]; `num_frames` int T; `rgb` bytes [T * 1024] and `audio`
    bytes [T * 128], the uint8 frames concatenated in order; and, for the segment keys present
    (2019 data), `segment_start_times`, `segment_end_times`, `segment_labels` int32 [S] and
    `segment_scores` float32 [S]. Every frame is kept. Raises RecordError.
    """
    fast = _canonical_frame_level(data)
    if fast is None:
        context, lists = _decode(data)
        rgb = _checked_frames(context, lists, "rgb")
        audio = _checked_frames(context, lists, "audio")
    else:
        context_bytes, rgb, audio = fast
        context = _decode_context(context_bytes)
    num_frames = len(rgb) // RGB_SIZE
    if len(audio) != num_frames * AUDIO_SIZE:
        raise RecordError(f"rgb has {num_frames} frames but audio has {len(audio) // AUDIO_SIZE}")
    record = {
        "id": _video_id(context),
        "labels": _int32s(context, "labels"),
        "num_frames": num_frames,
        "rgb": rgb,
        "audio": audio,
    }
    record.update(_segments(context))
    return record


def parse_video_level(data: bytes) -> dict:
    """A video-level record as a dict: `id` str, `labels` int32 [L], `mean_rgb` float32 [1024],
    `mean_audio` float32 [128]. Raises RecordError."""
    context, lists = _decode(data)
    if "rgb" in lists or "audio" in lists:
        raise RecordError(
            "frame-level record (feature_lists rgb/audio) where video-level was asked; "
            "use --level frame"
        )
    return {
        "id": _video_id(context),
        "labels": _int32s(context, "labels"),
        "mean_rgb": _mean_features(context, "mean_rgb", RGB_SIZE),
        "mean_audio": _mean_features(context, "mean_audio", AUDIO_SIZE),
    }


def _decode(data: bytes):
    """(context map, feature_lists map) of `data` parsed as a SequenceExample.

    An Example parses too: its `features` is field 1, the same as a SequenceExample's context.
    """
    try:
        sequence = _SequenceExample.FromString(data)
    except message.DecodeError as error:
        raise RecordError(f"not a tf.train.Example/SequenceExample: {error}") from None
    return sequence.context.feature, sequence.feature_lists.feature_list


def _decode_context(data: bytes):
    """The feature map of serialized tf.train.Features `data`."""
    try:
        return _Features.FromString(data).feature
    except message.DecodeError as error:
        raise RecordError(f"context does not decode as tf.train.Features: {error}") from None


def _keys_found(context, lists) -> str:
    """A short list of the context and feature-list keys of a record, for error messages."""
    return f"context keys {sorted(context)}, feature_lists keys {sorted(lists)}"


def _checked_frames(context, lists, key: str) -> bytes:
    """The frames of feature list `key` ("rgb" or "audio") of a parsed record, concatenated;
    RecordError says what is wrong (a video-level record, a missing list, a bad frame)."""
    if key not in lists:
        if "mean_rgb" in context or "mean_audio" in context:
            raise RecordError(
                "video-level record (mean_rgb/mean_audio) where frame-level was asked; "
                "use --level video"
            )
        raise RecordError(f"missing feature_list '{key}'; {_keys_found(context, lists)}")
    size = RGB_SIZE if key == "rgb" else AUDIO_SIZE
    feature_list = lists[key]
    values = [feature.bytes_list.value for feature in feature_list.feature]
    for index, value in enumerate(values):
        if len(value) != 1:
            kind = feature_list.feature[index].WhichOneof("kind")
            raise RecordError(
                f"feature_list '{key}' frame {index} holds {len(value)} byte strings "
                f"(kind {kind}); expected one of {size} bytes"
            )
        if len(value[0]) != size:
            raise RecordError(
                f"feature_list '{key}' frame {index} has {len(value[0])} bytes; expected {size}"
            )
    return b"".join([value[0] for value in values])


def _values(context, key: str, kind: str):
    """The values of context feature `key` of oneof `kind`, or None when the key is absent."""
    if key not in context:
        return None
    feature = context[key]
    found = feature.WhichOneof("kind")
    if found not in (kind, None):
        raise RecordError(f"context '{key}' is a {found}; expected a {kind}")
    return getattr(feature, kind).value


def _video_id(context) -> str:
    """The video id: context `id`, or `video_id` as in the 2017 data."""
    key = "id" if "id" in context else "video_id"
    values = _values(context, key, "bytes_list")
    if values is None or len(values) != 1:
        found = "missing" if values is None else f"has {len(values)} values"
        raise RecordError(f"context 'id' (or 2017 'video_id') {found}; expected one byte string")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(f"context '{key}' is not UTF-8: {values[0][:40]!r}") from None


def _int32s(context, key: str) -> np.ndarray:
    """int32 [N] of the int64 context feature `key`; empty when absent."""
    values = np.array(_values(context, key, "int64_list") or [], dtype=np.int64)
    if values.size and (values.min() < _INT32.min or values.max() > _INT32.max):
        bad = values[(values < _INT32.min) | (values > _INT32.max)][0]
        raise RecordError(f"context '{key}' holds {bad}, outside the int32 range")
    return values.astype(np.int32)


def _floats(context, key: str) -> np.ndarray:
    """float32 [N] of the float context feature `key`; empty when absent."""
    return np.array(_values(context, key, "float_list") or [], dtype=np.float32)


def _segments(context) -> dict:
    """The 2019 segment keys present in `context`, as int32 [S] (times, labels) and float32 [S]
    (scores); RecordError when their lengths differ."""
    present = [key for key in SEGMENT_KEYS if key in context]
    segments = {
        key: _floats(context, key) if key == "segment_scores" else _int32s(context, key)
        for key in present
    }
    lengths = {key: len(values) for key, values in segments.items()}
    if len(set(lengths.values())) > 1:
        raise RecordError(f"segment fields differ in length: {lengths}")
    return segments


def _mean_features(context, key: str, size: int) -> np.ndarray:
    """float32 [size] of the video-level context feature `key`."""
    values = _values(context, key, "float_list")
    if values is None:
        raise RecordError(f"missing context '{key}'; {_keys_found(context, {})}")
    if len(values) != size:
        raise RecordError(f"context '{key}' has {len(values)} floats; expected {size}")
    return np.array(values, dtype=np.float32)


def _canonical_frame_level(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(serialized context, rgb frames, audio frames) read straight from the wire format, or
    None when the record is not laid out the usual way (then the full parse takes over)."""
    try:
        context, feature_lists = _only_fields(_length_fields(memoryview(data)))
        lists = _feature_list_payloads(feature_lists)
        rgb = _uniform_frames(lists.get("rgb"), RGB_SIZE)
        audio = _uniform_frames(lists.get("audio"), AUDIO_SIZE)
    except (ValueError, IndexError):
        return None
    if rgb is None or audio is None:
        return None
    return bytes(context), rgb, audio


def _feature_list_payloads(feature_lists: memoryview) -> dict[str, memoryview]:
    """Serialized FeatureList of each key of serialized FeatureLists; the last entry of a key
    wins, as in protobuf maps. ValueError when an entry is not exactly one key and one value."""
    fields = _length_fields(feature_lists)
    if sorted(fields) != [1]:
        raise ValueError("FeatureLists with fields other than feature_list")
    payloads = {}
    for entry in fields[1]:
        key, value = _only_fields(_length_fields(entry))
        payloads[bytes(key).decode("utf-8")] = value
    return payloads


def _only_fields(fields: dict[int, list[memoryview]]) -> tuple[memoryview, memoryview]:
    """(field 1, field 2) of a message that has each exactly once and no other field;
    ValueError otherwise."""
    if sorted(fields) != [1, 2] or len(fields[1]) != 1 or len(fields[2]) != 1:
        raise ValueError("not exactly one field 1 and one field 2")
    return fields[1][0], fields[2][0]


def _length_fields(buffer: memoryview) -> dict[int, list[memoryview]]:
    """The fields of a serialized message by field number, all length-delimited; ValueError
    (or IndexError when truncated) for any other wire type or a length past the end."""
    fields: dict[int, list[memoryview]] = {}
    position, end = 0, len(buffer)
    while position < end:
        tag, position = _varint(buffer, position)
        length, position = _varint(buffer, position)
        if tag & 7 != 2 or position + length > end:
            raise ValueError("not a length-delimited field")
        fields.setdefault(tag >> 3, []).append(buffer[position : position + length])
        position += length
    return fields


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at `position`; at most 10 bytes."""
    value = shift = 0
    while True:
        byte = buffer[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _varint_bytes(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative `value`."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _frame_header(size: int) -> np.ndarray:
    """uint8 [H]: the bytes before a frame of `size` bytes inside a FeatureList: the tags and
    lengths of FeatureList.feature, Feature.bytes_list and BytesList.value (all field 1)."""
    value = b"\x0a" + _varint_bytes(size)
    bytes_list = b"\x0a" + _varint_bytes(size + len(value))
    feature = b"\x0a" + _varint_bytes(size + len(value) + len(bytes_list))
    return np.frombuffer(feature + bytes_list + value, dtype=np.uint8)


_FRAME_HEADERS = {size: _frame_header(size) for size in (RGB_SIZE, AUDIO_SIZE)}


def _uniform_frames(feature_list: memoryview | None, size: int) -> bytes | None:
    """The frames of a serialized FeatureList concatenated, if every frame is a Feature holding
    one bytes value of `size` bytes and nothing else; None otherwise."""
    if feature_list is None:
        return None
    header = _FRAME_HEADERS[size]
    width = len(header) + size
    if len(feature_list) % width:
        return None
    rows = np.frombuffer(feature_list, dtype=np.uint8).reshape(-1, width)
    if not (rows[:, : len(header)] == header).all():
        return None
    return rows[:, len(header) :].tobytes()
