"""Typed settings from config sections: every key checked and converted once, by its annotation.

A settings class is a frozen dataclass whose field annotations say what a key takes::

    @dataclass(frozen=True)
    class TrainSettings:
        epochs: PositiveInt
        cpu_threads: PositiveInt | None = None

:func:`parse_settings` turns a config section (a mapping from YAML) into such an instance;
:func:`parse_arguments` does the same for the keyword-only arguments of a callable (a model's
``__init__``). Both raise :class:`ConfigError` naming the key (``train.epochs``) for an unknown key,
a missing one, or a value of the wrong type, shape or range. Conversions are the safe ones only:
an integer where a number is expected becomes a float (``-o optimizer.weight_decay=0``), a list
where a sequence is expected becomes a tuple; a bool is never taken for a number.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Mapping, Union


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or key."""


@dataclass(frozen=True)
class AtLeast:
    """A bound on a number: ``value >= low`` (``value > low`` when ``strict``)."""

    low: float
    strict: bool = False

    def holds(self, value) -> bool:
        return value > self.low if self.strict else value >= self.low

    def __str__(self) -> str:
        return f"{'>' if self.strict else '>='} {self.low:g}"


PositiveInt = Annotated[int, AtLeast(1)]
Count = Annotated[int, AtLeast(0)]
PositiveFloat = Annotated[float, AtLeast(0, strict=True)]
NonNegativeFloat = Annotated[float, AtLeast(0)]


def parse_settings(cls: type, section: Mapping | None, where: str, *, partial: bool = False):
    """An instance of the dataclass ``cls`` from the mapping ``section`` (the config section ``where``).

    With ``partial``, only the keys present are converted and returned as a dict (no defaults, no
    construction): for sections that override some keys of another.
    """
    section = _mapping(section, where)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls, include_extras=True)
    _reject_unknown(section, fields, where)
    values = {key: convert(value, hints[key], f"{where}.{key}") for key, value in section.items()}
    if partial:
        return values
    missing = [name for name, f in fields.items() if name not in values and _required(f)]
    if missing:
        raise ConfigError(f"config key {where}.{missing[0]} is missing: {describe(hints[missing[0]])} is needed")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"config section {where}: {exc}") from None


def parse_arguments(function: Callable, section: Mapping | None, where: str) -> dict:
    """The keyword arguments ``section`` gives ``function``, each converted by its annotation;
    arguments left out keep the function's defaults."""
    section = _mapping(section, where)
    parameters = {name: p for name, p in inspect.signature(function).parameters.items()
                  if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "self"}
    hints = typing.get_type_hints(function, include_extras=True)
    _reject_unknown(section, parameters, where)
    return {key: convert(value, hints.get(key, Any), f"{where}.{key}") for key, value in section.items()}


def convert(value, annotation, key: str):
    """``value`` as the type ``annotation`` says, or ConfigError naming ``key``."""
    converted = _converted(value, annotation)
    if converted is _REFUSED:
        raise ConfigError(f"config key {key}: {value!r} is not {describe(annotation)}")
    return converted


def describe(annotation) -> str:
    """What a value of ``annotation`` looks like, in words: ``an integer >= 1``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return f"{describe(args[0])} {' and '.join(map(str, args[1:]))}"
    if _is_union(annotation):
        choices = [describe(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(choices)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if len(args) == 2 and args[1] is not Ellipsis and origin is tuple:
            return f"a list of 2 ({describe(args[0])}, {describe(args[1])})"
        item = describe(args[0]) if args else "values"
        return f"a list, each {item}" if args else "a list"
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return _NAMES.get(annotation, "settable in a config (only in code)")


def as_plain(value):
    """A settings value as plain YAML data: dataclasses to dicts, tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, (tuple, list)):
        return [as_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    return value


_REFUSED = object()
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Any: "a value"}


def _converted(value, annotation):
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is Annotated:
        inner = _converted(value, args[0])
        ok = inner is not _REFUSED and all(bound.holds(inner) for bound in args[1:])
        return inner if ok else _REFUSED
    if _is_union(annotation):
        for choice in args:
            converted = _converted(value, choice)
            if converted is not _REFUSED:
                return converted
        return _REFUSED
    if origin is Literal:
        return value if any(value == a and type(value) is type(a) for a in args) else _REFUSED
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        return _sequence(value, origin, args)
    if dataclasses.is_dataclass(annotation):
        return value if isinstance(value, annotation) else _REFUSED
    return _scalar(value, annotation)


def _scalar(value, annotation):
    if annotation is type(None):
        return None if value is None else _REFUSED
    if annotation is bool:
        return value if isinstance(value, bool) else _REFUSED
    if annotation is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _REFUSED
    if annotation is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if number and math.isfinite(value) else _REFUSED
    if annotation is str:
        return value if isinstance(value, str) else _REFUSED
    return _REFUSED


def _sequence(value, origin, args):
    if not isinstance(value, (list, tuple)):
        return _REFUSED
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            return _REFUSED
        items = [_converted(v, a) for v, a in zip(value, args)]
    else:
        items = [_converted(v, args[0]) if args else v for v in value]
    return _REFUSED if any(item is _REFUSED for item in items) else tuple(items)


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _mapping(section, where: str) -> dict:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config section {where}: expected a mapping of keys to values, got {section!r}")
    return dict(section)


def _reject_unknown(section: dict, known: Mapping, where: str) -> None:
    unknown = sorted(set(section) - set(known))
    if unknown:
        takes = f"takes {', '.join(sorted(known))}" if known else "takes no other keys"
        raise ConfigError(f"unknown config key '{where}.{unknown[0]}': {where} {takes}")


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
