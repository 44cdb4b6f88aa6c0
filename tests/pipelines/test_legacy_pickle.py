"""The restricted legacy-pickle reader: plain data comes back, code is never run."""

import os
import pickle
import struct
from typing import ClassVar

import numpy as np
import pytest

from videotk.pipelines.legacy_pickle import LegacyPickleError, load_legacy_pickle, loads_legacy_pickle

ARRAYS = {
    "float32": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    "float64": np.arange(5, dtype=np.float64) / 3,
    "int64": np.array([-(2**40), 0, 7], dtype=np.int64),
    "int16": np.array([[1, -2], [3, -4]], dtype=np.int16),
    "uint8": np.arange(256, dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "complex64": np.array([1 + 2j, -3j], dtype=np.complex64),
    "big_endian": np.arange(4, dtype=">f4"),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "structured": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "empty": np.zeros((0, 201), dtype=np.float32),
    "zero_d": np.array(3.5),
}


class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: ``str`` as 8-bit strings (SHORT_BINSTRING /
    BINSTRING, so ``bytes`` too) and numpy's helpers under their old module ``numpy.core``."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def _save_str8(self, data: bytes, obj) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        self._save_str8(obj, obj)

    def save_str(self, obj: str) -> None:
        self._save_str8(obj.encode("latin-1"), obj)

    def save_global(self, obj, name=None) -> None:
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name).replace("numpy._core", "numpy.core").replace("builtins", "__builtin__")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def python2_pickle(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def assert_same(loaded: np.ndarray, expected: np.ndarray) -> None:
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, expected)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_arrays_of_every_dtype_come_back_at_every_protocol(tmp_path, protocol):
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps({b"scores": ARRAYS["float32"], "all": ARRAYS}, protocol=protocol))
    loaded, unrestricted = load_legacy_pickle(path), pickle.loads(path.read_bytes())
    assert_same(loaded[b"scores"], ARRAYS["float32"])
    for name, array in ARRAYS.items():
        # numpy itself rebuilds '>f4' as '<f4' below protocol 5: the same values, as pickle.loads gives them
        assert_same(loaded["all"][name], unrestricted["all"][name])
        np.testing.assert_array_equal(loaded["all"][name], array)
    assert loaded["all"]["fortran"].flags.f_contiguous


def test_plain_containers_numbers_and_numpy_scalars(tmp_path):
    value = {"list": [1, 2.5, None, True, False], "tuple": (b"raw", "text", 2**70, -3, 1.5 + 2j),
             "nested": {"deep": [[], {}, ()]}, "scalars": [np.float32(1.25), np.int64(-9), np.bool_(True)],
             "buffer": bytearray(b"abc")}
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(value, protocol=2))
    loaded = load_legacy_pickle(path)
    assert loaded == value
    assert [type(s) for s in loaded["scalars"]] == [np.float32, np.int64, np.bool_]


def test_python2_pickle_with_bytes_keys_as_the_legacy_readers_load_it(tmp_path):
    scores = np.random.default_rng(0).random((7, 201)).astype(np.float32)
    path = tmp_path / "v_abc.pkl"
    path.write_bytes(python2_pickle({"scores": scores, "name": "v_abc"}))
    data = path.read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in data and b"U\x06scores" in data  # Python 2's opcodes
    loaded = load_legacy_pickle(path, encoding="bytes")
    assert set(loaded) == {b"scores", b"name"} and loaded[b"name"] == b"v_abc"
    assert_same(loaded[b"scores"], scores)


def test_python2_pickle_with_latin1_gives_str_keys(tmp_path):
    path = tmp_path / "feat.pkl"
    path.write_bytes(python2_pickle({"vid": ARRAYS["float64"], "caf\xe9": [ARRAYS["int16"], ARRAYS["structured"]]}))
    loaded = load_legacy_pickle(path, encoding="latin1")
    assert set(loaded) == {"vid", "caf\xe9"}
    assert_same(loaded["vid"], ARRAYS["float64"])
    assert_same(loaded["caf\xe9"][1], ARRAYS["structured"])


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({b"scores": np.zeros(3), b"x": RunsCode(marker)}, protocol=2))
    with pytest.raises(LegacyPickleError) as info:
        load_legacy_pickle(path)
    message = str(info.value)
    assert f"refuses to load {os.system.__module__}.system from {path}" in message
    assert "legacy pickles may hold only arrays, lists, dicts, strings and numbers" in message
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("__builtin__", "getattr"), ("subprocess", "Popen"),
                                          ("numpy", "load"), ("numpy.core.multiarray", "fromfile"),
                                          ("copyreg", "_reconstructor"), ("pickle", "loads")])
def test_every_other_global_is_refused_by_name(module, name):
    data = pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.STOP
    with pytest.raises(LegacyPickleError, match=f"refuses to load {module}.{name} from payload.pkl"):
        loads_legacy_pickle(data, source="payload.pkl")


def test_an_object_array_holding_code_is_refused(tmp_path):
    items = np.empty(2, dtype=object)
    items[:] = [1, RunsCode(tmp_path / "ran")]
    with pytest.raises(LegacyPickleError, match="refuses to load"):
        loads_legacy_pickle(pickle.dumps(items, protocol=2))
    assert not (tmp_path / "ran").exists()


def test_codecs_encode_is_admitted_for_latin1_only():
    data = (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"_codecs\nencode\n" + pickle.BINUNICODE
            + struct.pack("<I", 4) + b"text" + pickle.BINUNICODE + struct.pack("<I", 5) + b"rot13"
            + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP)
    with pytest.raises(LegacyPickleError, match="refuses _codecs.encode"):
        loads_legacy_pickle(data, source="codec.pkl")


def test_a_damaged_pickle_names_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({b"scores": ARRAYS["float32"]}, protocol=2)[:-20])
    with pytest.raises(LegacyPickleError, match=f"{path}: not a readable pickle"):
        load_legacy_pickle(path)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_legacy_pickle(tmp_path / "absent.pkl")
