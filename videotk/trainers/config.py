"""Training configuration: the model's YAML, then ``-o key=value`` overrides, then one parse.

A config file has six sections:

- ``model``: ``name`` and the model's keyword arguments, checked against its signature;
- ``data``: ``task`` (a registered task family, see :mod:`videotk.trainers.tasks`) and that
  task's data settings;
- ``train``: :class:`~videotk.trainers.sections.TrainSettings`;
- ``optimizer`` and ``lr_scheduler``: ``name`` and that optimizer's or schedule's settings
  (:mod:`videotk.trainers.optim`);
- ``eval``: the task's evaluation settings (:class:`~videotk.trainers.sections.EvalSettings` or a
  subclass);
- ``stages`` (only for tasks trained in stages, one network after another): per stage name, the
  ``train``, ``optimizer`` and ``lr_scheduler`` keys that differ from the top-level ones
  (``-o stages.pem.train.epochs=5``); :meth:`Config.for_stage` gives the config a stage trains with.

:func:`load_config` returns a :class:`Config` in which every section has been turned into typed
values once; nothing downstream reads raw keys. An unknown key, a value of the wrong type, shape or
range, and keys of two sections that contradict each other (``model.seg_num`` against
``data.seg_num``) are errors naming the key. Configs saved next to checkpoints (``config.yaml``)
are the resolved config and load the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .sections import EvalSettings, TrainSettings
from .settings import ConfigError, as_plain, parse_arguments, parse_settings

__all__ = ["CONFIG_DIR", "Config", "ConfigError", "EvalSettings", "ModelSettings", "TrainSettings",
           "bundled_configs", "config_path", "dump", "load_config"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # shipped inside the package
SECTIONS = ("model", "data", "train", "optimizer", "lr_scheduler", "eval")
OPTIONAL_SECTIONS = ("stages",)
STAGE_SECTIONS = ("train", "optimizer", "lr_scheduler")


@dataclass(frozen=True)
class ModelSettings:
    """The ``model`` section: the registered model ``name`` and its keyword ``arguments``."""

    name: str
    arguments: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.arguments.get(key, default)


@dataclass(frozen=True)
class Config:
    """A resolved config: every section parsed into typed settings."""

    model: ModelSettings
    task: str
    data: Any
    train: TrainSettings
    optimizer: Any
    lr_scheduler: Any
    eval: Any
    #: per stage: its raw ``train``/``optimizer``/``lr_scheduler`` overrides and their parse
    stages: dict = field(default_factory=dict)

    def for_stage(self, name: str) -> "Config":
        """The config stage ``name`` trains with: the top-level sections with that stage's keys."""
        parsed = self.stages.get(name, {}).get("parsed", {})
        return dataclasses.replace(self, **parsed)

    def to_dict(self) -> dict:
        """The resolved config as plain YAML data, in the layout of the config files."""
        from .optim import schedule_name, optimizer_name

        return {
            "model": {"name": self.model.name, **as_plain(self.model.arguments)},
            "data": {"task": self.task, **as_plain(self.data)},
            "train": as_plain(self.train),
            "optimizer": {"name": optimizer_name(self.optimizer), **as_plain(self.optimizer)},
            "lr_scheduler": {"name": schedule_name(self.lr_scheduler), **as_plain(self.lr_scheduler)},
            "eval": as_plain(self.eval),
            **({"stages": {name: stage["raw"] for name, stage in self.stages.items()}} if self.stages else {}),
        }


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


def load_config(model: str, config: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """The resolved config of ``model``: the YAML ``config`` (a path or a bundled config's name;
    default: the model's seed config), then ``overrides`` (``section.key=value``), parsed."""
    path = config_path(model, config)
    raw = read_yaml(path)
    from ..models.registry import normalize_name

    if normalize_name(str(raw["model"].get("name", ""))) != normalize_name(model):
        raise ConfigError(f"{path} is a config for {raw['model'].get('name')!r}, not {model!r}")
    for item in overrides:
        apply_override(raw, item)
    return parse_config(raw)


def read_yaml(path: Path) -> dict:
    """The sections of the YAML file ``path``; ConfigError when it is no config."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not a YAML config ({yaml_problem(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(raw, dict) or any(not isinstance(raw.get(s), dict) for s in SECTIONS):
        raise ConfigError(f"{path}: a config needs the sections {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS) - set(OPTIONAL_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; a config has {', '.join(SECTIONS)}")
    if not isinstance(raw.get("stages", {}), dict):
        raise ConfigError(f"{path}: section stages must map stage names to their sections")
    return raw


def apply_override(raw: dict, item: str) -> None:
    """Set ``section.key=value`` (value parsed as YAML) in the raw config, in place.

    The section must exist; whether the key does is checked when the config is parsed, so a key a
    config file leaves at its default can be set too.
    """
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or len(parts) < 2 or not all(parts):
        raise ConfigError(f"override {item!r}: expected section.key=value, e.g. train.epochs=3")
    if parts[0] not in SECTIONS + OPTIONAL_SECTIONS:
        raise ConfigError(f"unknown config key {key.strip()!r}: a config has the sections {', '.join(SECTIONS)}")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and (depth > 0 or part in OPTIONAL_SECTIONS):
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({yaml_problem(exc)})") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(exc, 'problem', None) or type(exc).__name__}{where}"


def parse_config(raw: dict) -> Config:
    """Turn the raw sections into a :class:`Config`; ConfigError naming the first bad key."""
    from .optim import parse_optimizer, parse_schedule
    from .tasks import task_class

    model = parse_model(raw["model"])
    data = dict(raw["data"])
    task = task_class(data.pop("task", None))
    config = Config(
        model=model,
        task=task.name,
        data=task.parse_data(data),
        train=parse_settings(TrainSettings, raw["train"], "train"),
        optimizer=parse_optimizer(raw["optimizer"]),
        lr_scheduler=parse_schedule(raw["lr_scheduler"]),
        eval=parse_settings(task.Eval, raw["eval"], "eval"),
    )
    config = dataclasses.replace(config, stages=parse_stages(raw, task))
    task.check_config(config)
    return config


def parse_stages(raw: dict, task) -> dict:
    """The ``stages`` section: for each of the task's stages, its overrides of the top-level
    ``train``, ``optimizer`` and ``lr_scheduler`` (merged key by key; an optimizer or schedule of
    another ``name`` replaces the top-level one), parsed."""
    from .optim import OPTIMIZERS, SCHEDULES, _parse_named

    section = raw.get("stages") or {}
    known = tuple(getattr(task, "stages", ()))
    stages = {}
    for name, overrides in section.items():
        where = f"stages.{name}"
        if name not in known:
            allowed = f"the {task.name} task trains the stages {', '.join(known)}" if known else \
                f"the {task.name} task trains in one stage"
            raise ConfigError(f"config key {where}: unknown stage; {allowed}")
        if not isinstance(overrides, dict):
            raise ConfigError(f"config key {where}: expected the sections {', '.join(STAGE_SECTIONS)}")
        extra = sorted(set(overrides) - set(STAGE_SECTIONS))
        if extra:
            raise ConfigError(f"config key {where}.{extra[0]}: a stage sets only {', '.join(STAGE_SECTIONS)}")
        merged = {}
        for key in STAGE_SECTIONS:
            base, over = dict(raw[key]), dict(overrides.get(key) or {})
            if key != "train" and "name" in over and over["name"] != base.get("name"):
                base = {}
            merged[key] = {**base, **over}
        parsed = {
            "train": parse_settings(TrainSettings, merged["train"], f"{where}.train"),
            "optimizer": _parse_named(merged["optimizer"], OPTIMIZERS, f"{where}.optimizer"),
            "lr_scheduler": _parse_named(merged["lr_scheduler"], SCHEDULES, f"{where}.lr_scheduler"),
        }
        stages[name] = {"raw": {k: v for k, v in overrides.items() if v}, "parsed": parsed}
    return stages


def parse_model(section: dict) -> ModelSettings:
    """The ``model`` section checked against the registered model's keyword arguments."""
    from ..models import model_class

    section = dict(section)
    name = section.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"config key model.name: {name!r} is not a model name (see `vtk models`)")
    try:
        cls = model_class(name)
    except KeyError as exc:
        raise ConfigError(f"config key model.name: {exc}") from None
    return ModelSettings(name, parse_arguments(cls.__init__, section, "model"))


def dump(config: Config, path: str | Path) -> None:
    """Write the resolved ``config`` as YAML to ``path``."""
    Path(path).write_text(to_yaml(config), encoding="utf-8")


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
