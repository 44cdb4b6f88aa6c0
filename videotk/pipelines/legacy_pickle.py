"""Read the Python pickles that legacy video datasets ship (C-TCN score files, caption features).

A pickle is a program: unpickling calls whatever globals it names, so a file from a download or a
colleague's disk could run any code. Converting data must never do that. The reader here admits
only the globals needed to rebuild plain data: numpy arrays, dtypes and scalars, and the builtin
containers and numbers; anything else is refused, without being called, by
:class:`LegacyPickleError` naming the file and the global.

Legacy files were mostly written by Python 2 (protocol 2, ``str`` as bytes), so ``encoding``
chooses how their 8-bit strings come back: ``"bytes"`` (the legacy readers' choice, keys such as
``b'scores'``), ``"latin1"`` (as ``str``) or any codec name. Both Python 2's module names
(``numpy.core.multiarray``, ``__builtin__``) and Python 3's (``numpy._core.multiarray``) are
understood.
"""

from __future__ import annotations

import builtins
import codecs
import functools
import importlib
import io
import os
import pickle
from collections.abc import Callable
from typing import Any

ADMITTED_WHAT = "legacy pickles may hold only arrays, lists, dicts, strings and numbers"

# numpy's private reconstruction helpers -> their submodule (under numpy.core before numpy 2, numpy._core since)
_NUMPY_INTERNALS = {
    "_reconstruct": "multiarray",
    "scalar": "multiarray",
    "_frombuffer": "numeric",
}
_NUMPY_PACKAGES = ("numpy.core", "numpy._core")
_NUMPY_PUBLIC = {"ndarray", "dtype"}
_BUILTINS = {"bytes", "bytearray", "complex"}
_BUILTIN_MODULES = ("builtins", "__builtin__")


class LegacyPickleError(ValueError):
    """A legacy pickle that cannot be read, or that names a global outside the admitted set."""


def load_legacy_pickle(path: str | os.PathLike, *, encoding: str = "bytes") -> Any:
    """The object a legacy pickle file holds, rebuilt without running any code it names.

    Raises :class:`LegacyPickleError` for a refused global or a damaged file, ``OSError`` when the
    file cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    return loads_legacy_pickle(data, source=os.fspath(path), encoding=encoding)


def loads_legacy_pickle(data: bytes, *, source: str = "<bytes>", encoding: str = "bytes") -> Any:
    """:func:`load_legacy_pickle` for pickle bytes in memory; ``source`` names them in errors."""
    unpickler = _RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding)
    try:
        return unpickler.load()
    except LegacyPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, LookupError, MemoryError) as exc:
        raise LegacyPickleError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, encoding: str):
        super().__init__(file, encoding=encoding, errors="strict")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "_codecs" and name == "encode":
            return functools.partial(_latin1_encode, source=self._source)
        found = _admitted(module, name)
        if found is None:
            raise LegacyPickleError(f"refuses to load {module}.{name} from {self._source}: {ADMITTED_WHAT}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise LegacyPickleError(f"refuses a persistent reference from {self._source}: {ADMITTED_WHAT}")


def _admitted(module: str, name: str) -> Any | None:
    """The object ``module.name`` stands for when it is one of the admitted globals, else None."""
    if module in _BUILTIN_MODULES and name in _BUILTINS:
        return getattr(builtins, name)
    if module == "numpy" and name in _NUMPY_PUBLIC:
        return getattr(importlib.import_module("numpy"), name)
    submodule = _NUMPY_INTERNALS.get(name)
    if submodule and module in {f"{package}.{submodule}" for package in _NUMPY_PACKAGES}:
        return _numpy_internal(submodule, name)
    return None


def _numpy_internal(submodule: str, name: str) -> Callable:
    """numpy's private reconstruction helper, from wherever this numpy keeps it."""
    try:
        found = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1.x
        found = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(found, name)


def _latin1_encode(text: str, encoding: str = "utf-8", *, source: str) -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle bytes at protocols 0-2, and nothing else."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise LegacyPickleError(f"refuses _codecs.encode({type(text).__name__}, {encoding!r}) from {source}: "
                                f"{ADMITTED_WHAT}")
    return text.encode("latin-1")
