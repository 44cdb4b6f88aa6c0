"""Training configuration: the model's YAML, then ``-o key=value`` overrides, then one validation step.

A config has six sections: ``model`` (``name`` and the model's keyword arguments), ``data``
(``task`` and the dataset's keyword arguments), ``train``, ``optimizer``, ``lr_scheduler`` and
``eval``. Every key a run may use is in the YAML, so an override of a key the YAML does not have is
an error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # shipped inside the package
SECTIONS = ("model", "data", "train", "optimizer", "lr_scheduler", "eval")
OPTIMIZERS = ("adam", "rmsprop", "momentum")
SCHEDULERS = ("constant", "multistep", "step_examples")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or key."""


def bundled_configs() -> list[str]:
    """Names of the configs shipped with videotk (``tsn``, ``tsn_tiny``, ...), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(model: str, config: str | Path | None = None) -> Path:
    """The YAML file ``config`` names: a path, or the name of a bundled config (``tsn_tiny``);
    without it, the default config of ``model``."""
    if config is None:
        from ..models import model_info

        path = CONFIG_DIR / model_info(model)["config"]
        if not path.is_file():
            raise ConfigError(f"no default config for {model!r} at {path}; pass --config FILE")
        return path
    path = Path(config)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if path.parent == Path(".") and (CONFIG_DIR / f"{name}.yaml").is_file():
        return CONFIG_DIR / f"{name}.yaml"
    raise ConfigError(f"--config {config}: no such file, nor a bundled config; bundled: {', '.join(bundled_configs())}")


def load_config(model: str, config: str | Path | None = None, overrides: Iterable[str] = ()) -> dict:
    """The resolved config of ``model``: the YAML ``config`` (a path or a bundled config's name;
    default: the model's seed config), then ``overrides``, validated."""
    from ..models.registry import normalize_name

    path = config_path(model, config)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    if not isinstance(config, dict) or any(not isinstance(config.get(s), dict) for s in SECTIONS):
        raise ConfigError(f"{path}: a config needs the sections {', '.join(SECTIONS)}")
    if normalize_name(str(config["model"].get("name", ""))) != normalize_name(model):
        raise ConfigError(f"{path} is a config for {config['model'].get('name')!r}, not {model!r}")
    for item in overrides:
        apply_override(config, item)
    validate(config)
    return config


def apply_override(config: dict, item: str) -> None:
    """Set ``section.key=value`` (value parsed as YAML) in place; unknown keys are errors."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
    parts = key.strip().split(".")
    node = config
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:depth]) or "the config"
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not a section)"
            raise ConfigError(f"unknown config key {key.strip()!r}: {where} has {known}")
        if depth < len(parts) - 1:
            node = node[part]
    try:
        node[parts[-1]] = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc


def _require(config: dict, key: str, test, expectation: str) -> None:
    section, name = key.split(".")
    value = config[section].get(name)
    if not test(value):
        raise ConfigError(f"config key {key}: {value!r} is not {expectation}")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(config: dict) -> None:
    """Check the keys every trainer relies on; model and data keys are checked when used."""
    _require(config, "train.epochs", _positive_int, "a positive integer")
    _require(config, "train.batch_size", _positive_int, "a positive integer")
    _require(config, "train.num_workers", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
    _require(config, "train.cpu_threads", lambda v: v is None or _positive_int(v), "null or a positive integer")
    _require(config, "train.seed", lambda v: isinstance(v, int), "an integer")
    _require(config, "train.log_every", _positive_int, "a positive integer")
    _require(config, "eval.batch_size", _positive_int, "a positive integer")
    _require(config, "optimizer.name", lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    _require(config, "optimizer.learning_rate", lambda v: _number(v) and v > 0, "a positive number")
    _require(config, "optimizer.weight_decay", lambda v: _number(v) and v >= 0, "a number >= 0")
    _require(config, "optimizer.grad_clip", lambda v: v is None or (_number(v) and v > 0), "null or a positive number")
    _require(config, "lr_scheduler.name", lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}")


def dump(config: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
