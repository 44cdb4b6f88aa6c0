"""The task protocol: everything the training loop, evaluate, predict, export and the CLI ask of a
task family, in one place.

A task ties a kind of cache to its models, loss, metrics and outputs. The generic code never names
a task; it calls these methods, in this order:

1. ``Task.parse_data(section)`` and ``Task.check_config(config)`` when the config is loaded:
   the ``data`` section as the task's typed :attr:`Task.Data`, and checks across sections
   (``model.seg_num`` against ``data.seg_num``).
2. ``task.open(path)`` before a run: the cache, checked once, here, for its kind (an error names
   the expected and the found kind and how to make the right one), the presence and size of every
   shard, and anything the task needs of it (:meth:`Task.check_cache`: labels within the model's
   classes).
3. ``task.loader(cache, ...)``: batches of :meth:`Task.dataset`, with the exact number of steps.
4. ``task.forward(model, batch)`` -> outputs, ``task.loss(outputs, batch)`` -> a scalar tensor:
   one training step (:meth:`Task.step` does both). ``model`` may be the Paddle layer or an
   exported inference model: both are called with :meth:`Task.inputs`.
5. ``task.evaluate_batch(model, batch)`` -> outputs and loss, ``task.evaluator()`` and
   ``task.update(evaluator, outputs, batch, loss)``: the metrics (:mod:`videotk.evaluators`). The
   outputs of evaluation may differ from those of training (a captioner decodes sentences).
6. ``task.predict_batch(model, batch)`` -> outputs, then ``task.predictions(results, cache,
   top_k, classes)``: JSON-serialisable records, one per video, from ``(outputs, batch)`` pairs in
   loader order, written by ``task.write_predictions(records, file)`` (JSON lines unless the task's
   result format is another).
7. ``task.input_spec()``: the ``paddle.static.InputSpec`` list of :meth:`Task.inputs`, for export.
8. ``task.predict_files(model, paths, ...)``, when :attr:`Task.raw_inputs` says what files the task
   reads directly (``"video files"``); ``None`` otherwise.

A task trained in stages (BSN: TEM, then PGM, then PEM) names them in :attr:`Task.stages`;
``task.stage(name)`` is then a task of its own for that stage (its ``caches``, dataset, loss and
``trained_layer``), or a derived stage (``derived = True``) whose ``derive(...)`` writes a cache
from the previous stage's weights. Evaluation and prediction use the task itself, which runs the
whole chain.

A new task family is a module in this package with a subclass decorated by :func:`register_task`,
imported in ``tasks/__init__.py``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, TextIO

import numpy as np
import paddle

from ...formats import Cache, CacheError, check_shards, open_cache
from ..sections import EvalSettings
from ..loader import Loader, make_loader
from ..settings import ConfigError, parse_settings

log = logging.getLogger(__name__)

TASKS: dict[str, type["Task"]] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: register a task family under ``cls.name``."""
    if cls.name in TASKS:
        raise ValueError(f"task name {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


def task_class(name: str | None) -> type["Task"]:
    """The task registered as ``name``; ConfigError naming ``data.task`` otherwise."""
    if name not in TASKS:
        raise ConfigError(f"config key data.task: unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]


class CacheKindError(CacheError):
    """A cache of another kind than the task reads."""


@dataclass(frozen=True)
class Step:
    """One training step's result: the loss, the model outputs, and how many samples it saw."""

    loss: paddle.Tensor
    outputs: Any
    samples: int


class Task:
    """Base class of task families; subclasses set the class attributes and the abstract methods."""

    name: ClassVar[str]
    #: cache kinds (manifest ``kind``) the task reads, and how to make one
    cache_kinds: ClassVar[tuple[str, ...]]
    cache_hint: ClassVar[str] = ""
    #: typed settings of the ``data`` and ``eval`` sections
    Data: ClassVar[type]
    Eval: ClassVar[type] = EvalSettings
    #: what files :meth:`predict_files` reads directly, or None
    raw_inputs: ClassVar[str | None] = None
    #: the stages trained one after the other, each in ``SAVE_DIR/<stage>`` (none: one model, one run)
    stages: ClassVar[tuple[str, ...]] = ()
    #: a stage that writes a cache instead of training (see :meth:`stage`)
    derived: ClassVar[bool] = False
    #: what a stage does, in a few words
    description: ClassVar[str] = ""

    def __init__(self, config) -> None:
        self.config = config
        self.data = config.data

    # -- config -------------------------------------------------------------------------------

    @classmethod
    def parse_data(cls, section: dict):
        """The ``data`` section (without ``task``) as :attr:`Data`."""
        return parse_settings(cls.Data, section, "data")

    @classmethod
    def check_config(cls, config) -> None:
        """ConfigError when keys of two sections contradict each other."""

    # -- caches and loaders ---------------------------------------------------------------------

    def open(self, path: str | os.PathLike, *, labels: bool = True) -> Cache:
        """The cache at ``path``, checked for what this task reads (with ``labels``: for training
        or evaluation, which need labelled records); CacheError naming the problem."""
        cache = open_cache(path)
        if cache.kind not in self.cache_kinds:
            expected = " or ".join(repr(k) for k in self.cache_kinds)
            raise CacheKindError(f"{path}: a {cache.kind!r} cache, but {self.config.model.name} reads {expected} "
                                 f"caches{': ' + self.cache_hint if self.cache_hint else ''}")
        problems = check_shards(cache)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CacheError(f"{path}: shard {problems[0]}{more}; `vtk verify {path}` lists them, and converting "
                             f"again into that folder rewrites them")
        self.check_cache(cache, labels=labels)
        return cache

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        """CacheError when this task cannot use the records of ``cache`` (e.g. labels outside the
        model's classes; unlabelled records when ``labels`` are needed)."""

    def dataset(self, cache: Cache, *, train: bool):
        """The :class:`~videotk.trainers.sharding.CacheDataset` of ``cache``."""
        raise NotImplementedError

    def loader(self, cache: Cache, *, batch_size: int, num_workers: int, train: bool, epoch: int = 0) -> Loader:
        """Batches of :meth:`dataset` for ``epoch``."""
        dataset = self.dataset(cache, train=train)
        dataset.set_epoch(epoch)
        return make_loader(dataset, batch_size=batch_size, num_workers=num_workers)

    def stage(self, name: str) -> "Task":
        """The task of stage ``name`` of :attr:`stages`."""
        raise NotImplementedError

    def caches(self, shards, valid_shards, save_dir) -> tuple[Cache, Cache | None]:
        """A training stage's training and validation caches, given the run's ``--shards`` and
        ``--valid-shards`` and the run folder (where earlier stages wrote theirs)."""
        return self.open(shards), (self.open(valid_shards) if valid_shards else None)

    # -- model ----------------------------------------------------------------------------------

    def trained_layer(self, model):
        """The part of ``model`` whose parameters this task (or stage) trains: all of it by default."""
        return model

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        """The positional inputs of the model's ``forward`` in ``batch``."""
        raise NotImplementedError

    def forward(self, model, batch: dict):
        """The outputs of ``model`` (a layer or an exported model) on ``batch``."""
        return model(*self.inputs(batch))

    def loss(self, outputs, batch: dict) -> paddle.Tensor:
        """The scalar training loss of ``outputs`` on ``batch``."""
        raise NotImplementedError

    def step(self, model, batch: dict) -> Step:
        """One training step's forward pass and loss."""
        outputs = self.forward(model, batch)
        return Step(self.loss(outputs, batch), outputs, batch_length(batch))

    def evaluate_batch(self, model, batch: dict) -> tuple[Any, float]:
        """The outputs the evaluator reads, and the batch's mean loss (no gradients are kept)."""
        outputs = self.forward(model, batch)
        return outputs, float(self.loss(outputs, batch))

    def predict_batch(self, model, batch: dict):
        """The outputs :meth:`predictions` reads."""
        return self.forward(model, batch)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        """The shapes and dtypes of :meth:`inputs`, for ``paddle.jit.save``."""
        raise NotImplementedError

    # -- metrics and outputs --------------------------------------------------------------------

    def evaluator(self):
        """A fresh evaluator (``update``, ``summary``, ``reset``) of this task's metrics."""
        raise NotImplementedError

    def update(self, evaluator, outputs, batch: dict, loss: float) -> None:
        """Feed one batch's outputs and mean loss to ``evaluator``."""
        raise NotImplementedError

    def predictions(self, results: Iterable[tuple[Any, dict]], cache: Cache, *, top_k: int,
                    classes: list[str] | None) -> Iterator[dict]:
        """One JSON-serialisable record per video from ``(outputs, batch)`` pairs in loader order."""
        raise NotImplementedError

    def write_predictions(self, records: Iterable[dict], file: TextIO) -> int:
        """Write ``records`` to the open text ``file``; returns how many. JSON lines by default."""
        count = 0
        for record in records:
            file.write(json.dumps(record) + "\n")
            count += 1
        return count

    def record_line(self, record: dict) -> str:
        """A prediction record in one line for a terminal."""
        return json.dumps(record)

    def predict_files(self, model, paths: list[str], *, top_k: int, classes: list[str] | None,
                      options: dict) -> Iterator[tuple[str, dict | str]]:
        """``(path, record)`` per file it could read, ``(path, reason)`` per file it could not."""
        raise NotImplementedError(f"{self.name} models do not read raw files")


def batch_length(batch: dict) -> int:
    """The number of samples in a batch (every tensor of a batch has them on its first axis)."""
    return int(next(iter(batch.values())).shape[0])


def as_numpy(tensor) -> np.ndarray:
    """A tensor (or an array) as a numpy array."""
    return tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
