"""The model registry: a plain dict of builders, filled by ``@register_model`` in each family's module.

Names are matched ignoring case, ``-``, ``_`` and spaces, so ``"Attention-LSTM"``,
``"attention_lstm"`` and ``"AttentionLSTM"`` name the same model. This module imports nothing
from Paddle; the model modules do.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, Callable

_MODELS: dict[str, dict[str, Any]] = {}


class UnknownModelError(KeyError, ValueError):
    """A model name that is not registered; the message lists the close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


def normalize_name(name: str) -> str:
    """The registry key of ``name``: lower case, without ``-``, ``_`` and spaces."""
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def register_model(name: str, *, task: str, inputs: str, config: str | None = None) -> Callable:
    """Decorator that registers a builder ``fn(**kwargs) -> ModelClass`` under ``name``; the return
    annotation names the class whose keyword-only ``__init__`` arguments a config may set.

    ``task`` says what the model does and on which data, ``inputs`` describes in one line what
    ``forward`` takes, and ``config`` is the file name of its default YAML (``<name>.yaml`` if not given).
    """

    def decorator(builder: Callable) -> Callable:
        key = normalize_name(name)
        if key in _MODELS:
            raise ValueError(f"model name {name!r} clashes with the registered {_MODELS[key]['name']!r}")
        _MODELS[key] = {"name": name, "builder": builder, "task": task, "inputs": inputs,
                        "config": config or f"{name}.yaml"}
        return builder

    return decorator


def _entry(name: str) -> dict[str, Any]:
    key = normalize_name(name)
    if key in _MODELS:
        return _MODELS[key]
    close = [_MODELS[k]["name"] for k in difflib.get_close_matches(key, list(_MODELS), n=3, cutoff=0.6)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModelError(f"unknown model {name!r}; {hint}registered models: {', '.join(list_models())}")


def create_model(name: str, **kwargs: Any):
    """Build the model registered as ``name`` with keyword arguments ``kwargs`` (defaults: the seed's)."""
    return _entry(name)["builder"](**kwargs)


def model_class(name: str) -> type:
    """The class the builder of ``name`` returns (its return annotation). Its keyword arguments are
    the keys of a config's ``model`` section."""
    builder = _entry(name)["builder"]
    cls = typing.get_type_hints(builder).get("return")
    if not isinstance(cls, type):
        raise TypeError(f"the builder of {name!r} needs a return annotation naming its model class")
    return cls


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(entry["name"] for entry in _MODELS.values())


def model_info(name: str) -> dict[str, str]:
    """``{name, task, inputs, config, description}`` of a registered model (description: builder docstring)."""
    entry = _entry(name)
    doc = (entry["builder"].__doc__ or "").strip()
    return {**{k: v for k, v in entry.items() if k != "builder"}, "description": doc.splitlines()[0] if doc else ""}
