"""The training loop and its companions (evaluate, predict, export), the same for every task.

Everything that depends on the data comes from the config's task (:mod:`videotk.trainers.tasks`);
everything that depends on the machine from :mod:`videotk.trainers.runtime`. Progress is reported
through ``callback(event: dict)``:

- ``{"event": "epoch_start", "epoch", "steps"}``, then ``{"event": "batch"}`` after every batch;
- ``{"event": "step", "epoch", "step", "loss", "lr", "samples_per_s", "data_wait_s"}`` every
  ``train.log_every`` steps;
- ``{"event": "epoch_end", "epoch", "loss", "metrics", "checkpoint"}``;
- ``{"event": "notice", "message"}`` for what a user should know (a seed-size model on a CPU, a
  batch larger than the data, checkpoints removed by ``train.keep_last``);
- ``{"event": "pretrained", "path", "loaded", "skipped", "missing"}``.

The CLI turns them into a progress bar and log lines; ``SAVE_DIR/train.log`` and
``SAVE_DIR/metrics.jsonl`` get the same (:mod:`videotk.trainers.logs`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import time
from pathlib import Path
from typing import Callable

import numpy as np
import paddle

from ..formats import Cache
from ..models import count_parameters, create_model
from . import runtime
from .checkpoint import (
    CONFIG_FILE,
    EXPORT_PREFIX,
    STATE_FILE,
    CheckpointError,
    check_resumable,
    check_run_folder,
    copy_classes,
    epoch_dir,
    is_exported,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    prune_checkpoints,
    read_classes,
    resolve_resume,
    save_checkpoint,
)
from .config import Config, ConfigError, bundled_configs, dump
from .logs import RunLog, epoch_line, step_line
from .tasks import Task, make_task

log = logging.getLogger(__name__)

Callback = Callable[[dict], None]
#: parameters above which a model on a CPU gets a notice pointing to its tiny config
LARGE_MODEL = 5_000_000


class NothingToDo(CheckpointError):
    """``--resume`` from a run that already trained all its epochs."""


def build_model(config: Config) -> paddle.nn.Layer:
    """The config's model, built with its (already type-checked) arguments; an argument the model
    refuses is a ConfigError naming the model section."""
    try:
        return create_model(config.model.name, **config.model.arguments)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config section model: {config.model.name} cannot be built with these arguments "
                          f"({exc})") from exc


def train(config: Config, shards: str | os.PathLike, *, valid_shards: str | os.PathLike | None = None,
          save_dir: str | Path = "output", resume: str | Path | None = None, overwrite: bool = False,
          pretrained: str | Path | None = None, device: str = "cpu", callback: Callback | None = None) -> dict:
    """Train ``config``'s model on the cache ``shards``; checkpoint every epoch into ``save_dir``.

    Returns ``{"history": [per-step {"epoch", "step", "loss", "lr"}], "metrics": {epoch: ...}}``.
    ``resume``: a checkpoint folder, or ``"latest"`` for the newest finished epoch in ``save_dir``;
    training continues after that epoch and the history equals the one of an uninterrupted run with
    the same seed. A ``save_dir`` holding another run's checkpoints is refused unless resuming or
    ``overwrite``. ``pretrained``: a local ImageNet ``.pdparams`` (paddle.vision ResNet layout) for
    the backbone.
    """
    notify = callback or (lambda event: None)
    task = make_task(config)
    if task.stages:
        return _train_stages(config, task, shards, valid_shards, Path(save_dir), resume=resume, overwrite=overwrite,
                             device=device, notify=notify)
    train_cache = task.open(shards)
    valid_cache = task.open(valid_shards) if valid_shards else None
    start = _resume_point(config, resume, save_dir)
    return _train_one(config, task, train_cache, valid_cache, save_dir, start=start, overwrite=overwrite,
                      pretrained=pretrained, device=device, notify=notify)


def _train_one(config: Config, task: Task, train_cache: Cache, valid_cache: Cache | None, save_dir: str | Path, *,
               start: Path | None, overwrite: bool, device: str, notify: Callback, pretrained: str | Path | None = None,
               initial: Path | None = None) -> dict:
    """Train one model (or one stage) from scratch, from ``initial`` weights, or from the checkpoint ``start``."""
    if runtime.is_main():
        check_run_folder(save_dir, resuming=start is not None, overwrite=overwrite)
        _writable(save_dir)
    runtime.prepare(device, cpu_threads=config.train.cpu_threads, num_workers=config.train.num_workers,
                    seed=config.train.seed)
    model = build_model(config)
    _notice_size(config, model, device, notify)
    if pretrained and start is None:
        from ..models import load_pretrained

        notify({"event": "pretrained", "path": str(pretrained), **load_pretrained(model, pretrained)})
    if initial is not None and start is None:
        load_weights(model, initial)
    run = _Run(config, task, model, save_dir, notify, device=device)
    if start is not None:
        run.restore(start)
    for epoch in range(run.epoch, config.train.epochs):
        run.train_epoch(epoch, train_cache)
        with run.precision.autocast():
            metrics = evaluate_model(run.model, task, valid_cache, config) if valid_cache is not None else None
        run.end_epoch(epoch, metrics, train_cache.classes)
    if runtime.is_main():
        dump(config, Path(save_dir) / CONFIG_FILE)
    return {"history": run.history, "metrics": run.metrics}


def _train_stages(config: Config, task: Task, shards, valid_shards, save_dir: Path, *, resume, overwrite: bool,
                  device: str, notify: Callback) -> dict:
    """Train a task of several stages (``task.stages``), each in ``save_dir/<stage>``: a training
    stage checkpoints like a one-stage run and starts from the weights the previous one ended
    with; a derived stage writes a cache there (``derive`` says whether it had to write it anew).
    With ``resume="latest"`` finished stages are kept and the first unfinished one continues from
    its newest checkpoint; once a stage has trained or rewritten its cache, the stages after it
    start over, since what they were trained on has changed."""
    if resume is not None and str(resume) != "latest":
        raise CheckpointError(f"--resume {resume}: {config.model.name} trains in stages ({', '.join(task.stages)}); "
                              "pass --resume latest to continue each where it stopped")
    history, metrics, weights, changed = [], {}, None, False
    for name in task.stages:
        stage = task.stage(name)
        stage_dir = save_dir / name
        stage_config = config.for_stage(name)
        notify({"event": "notice", "message": f"stage {name}: {stage.description}"})
        if stage.derived:
            changed |= stage.derive(stage_config, weights, shards, valid_shards, stage_dir, overwrite=overwrite,
                                    device=device, notify=notify)
            continue
        train_cache, valid_cache = stage.caches(shards, valid_shards, save_dir)
        start, restart = None, overwrite
        if changed and latest_checkpoint(stage_dir) is not None:
            notify({"event": "notice", "message": f"stage {name}: starting over in {stage_dir}, since an earlier "
                    "stage changed"})
            restart = True
        elif resume is not None and latest_checkpoint(stage_dir) is not None:
            try:
                start = _resume_point(stage_config, "latest", stage_dir)
            except NothingToDo:
                weights = latest_checkpoint(stage_dir)
                notify({"event": "notice", "message": f"stage {name}: all {stage_config.train.epochs} epochs "
                        f"are done in {stage_dir}"})
                continue
        result = _train_one(stage_config, stage, train_cache, valid_cache, stage_dir, start=start,
                            overwrite=restart, device=device, notify=notify, initial=weights)
        history += [{**h, "stage": name} for h in result["history"]]
        metrics.update({f"{name}/{epoch}": m for epoch, m in result["metrics"].items()})
        weights, changed = latest_checkpoint(stage_dir), True
    if valid_shards is not None and weights is not None:
        metrics["final"] = evaluate(config, valid_shards, weights, device=device)
        notify({"event": "notice", "message": "the whole chain on --valid-shards: " + ", ".join(
            f"{k} {v:.4f}" for k, v in metrics["final"].items() if isinstance(v, float))})
    if runtime.is_main():
        save_dir.mkdir(parents=True, exist_ok=True)
        dump(config, save_dir / CONFIG_FILE)
        if "final" in metrics:
            (save_dir / "metrics.json").write_text(json.dumps(metrics["final"], indent=2) + "\n")
    return {"history": history, "metrics": metrics}


class _Run:
    """The state of one training run: model, optimizer, schedule, precision, step count, history and logs.

    The model is prepared in this order: batch-norm layers synchronised (``train.sync_bn``), the
    optimizer built over its parameters, both decorated for mixed precision (``train.amp``), then
    wrapped for data parallelism, so that the all-reduce sees the parameters the optimizer updates.
    """

    def __init__(self, config: Config, task: Task, model: paddle.nn.Layer, save_dir: str | Path, notify: Callback, *,
                 device: str = "cpu"):
        self.config, self.task, self.save_dir, self.notify = config, task, Path(save_dir), notify
        self.log = RunLog(save_dir if runtime.is_main() else None)
        train = config.train
        model, notice = runtime.sync_batch_norm(model, enabled=train.sync_bn, device=device)
        self._notice(notice)
        global_batch = train.batch_size * runtime.world_size()
        self.scheduler = config.lr_scheduler.build(config.optimizer.learning_rate, global_batch)
        optimizer = config.optimizer.build(task.trained_layer(model), self.scheduler)
        model, self.optimizer, self.precision, notice = runtime.mixed_precision(
            model, optimizer, level=train.amp, dtype=train.amp_dtype, device=device)
        self._notice(notice)
        self.model = runtime.data_parallel(model)
        self.epoch, self.step, self.history, self.metrics = 0, 0, [], {}
        self.writer = _scalar_writer(save_dir, notify) if runtime.is_main() else None
        self.losses: list[float] = []

    def restore(self, checkpoint: Path) -> None:
        state = load_checkpoint(checkpoint, model=runtime.unwrapped(self.model), optimizer=self.optimizer,
                                scheduler=self.scheduler)
        self.epoch, self.step, self.history = state["epoch"] + 1, state["step"], state["history"]
        self.log.line(f"resumed from {checkpoint} (epoch {state['epoch']} done, step {self.step})")

    def train_epoch(self, epoch: int, cache: Cache) -> None:
        train = self.config.train
        loader = self.task.loader(cache, batch_size=train.batch_size, num_workers=train.num_workers, train=True,
                                  epoch=epoch)
        if epoch == self.epoch and train.batch_size > loader.samples:
            self._notice(f"train.batch_size {train.batch_size} is larger than the {loader.samples} training "
                         f"samples{' of this rank' if runtime.world_size() > 1 else ''}: each epoch is one batch")
        self.notify({"event": "epoch_start", "epoch": epoch, "steps": loader.steps})
        self.model.train()
        self.losses, samples, wait, window = [], 0, 0.0, time.perf_counter()
        fetched = time.perf_counter()
        for batch in loader:
            wait += time.perf_counter() - fetched
            with self.precision.autocast():
                step = self.task.step(self.model, batch)
            self.precision.step(step.loss, self.optimizer)
            lr = self.optimizer.get_lr()
            if self.config.lr_scheduler.per_batch:
                self.scheduler.step()
            self.step += 1
            value = float(step.loss)
            self.losses.append(value)
            self.history.append({"epoch": epoch, "step": self.step, "loss": value, "lr": lr})
            samples += step.samples
            self.notify({"event": "batch"})
            if self.step % train.log_every == 0:
                elapsed = time.perf_counter() - window
                self._step_event({"event": "step", "epoch": epoch, "step": self.step, "loss": value, "lr": lr,
                                  "samples_per_s": samples / elapsed, "data_wait_s": wait})
                samples, wait, window = 0, 0.0, time.perf_counter()
            fetched = time.perf_counter()

    def end_epoch(self, epoch: int, metrics: dict | None, classes: list[str] | None) -> None:
        if not self.config.lr_scheduler.per_batch:
            self.scheduler.step()
        if metrics is not None:
            self.metrics[epoch] = metrics
            self.log.record("eval", epoch=epoch, step=self.step, **metrics)
            _write_scalars(self.writer, {f"valid/{k}": v for k, v in metrics.items()}, self.step)
        checkpoint = None
        if runtime.is_main():
            checkpoint = save_checkpoint(epoch_dir(self.save_dir, epoch), model=runtime.unwrapped(self.model),
                                         optimizer=self.optimizer, scheduler=self.scheduler, config=self.config,
                                         epoch=epoch, step=self.step, history=self.history, classes=classes)
            removed = prune_checkpoints(self.save_dir, self.config.train.keep_last)
            if removed:
                self.log.line(f"train.keep_last {self.config.train.keep_last}: removed "
                              f"{', '.join(p.name for p in removed)}")
        loss = float(np.mean(self.losses)) if self.losses else None
        event = {"event": "epoch_end", "epoch": epoch, "loss": loss, "metrics": metrics,
                 "checkpoint": str(checkpoint) if checkpoint else None}
        self.log.record("epoch", epoch=epoch, step=self.step, loss=loss)
        self.log.line(epoch_line(event))
        self.notify(event)

    def _step_event(self, event: dict) -> None:
        self.log.record(**event)
        self.log.line(step_line(event))
        _write_scalars(self.writer, {"train/loss": event["loss"], "train/lr": event["lr"],
                                     "train/samples_per_s": event["samples_per_s"],
                                     "train/data_wait_s": event["data_wait_s"]}, event["step"])
        self.notify(event)

    def _notice(self, message: str | None) -> None:
        if message is None:
            return
        self.log.line(message)
        self.notify({"event": "notice", "message": message})


def _resume_point(config: Config, resume: str | Path | None, save_dir: str | Path) -> Path | None:
    """The checkpoint to resume from, checked against ``config`` before anything is built."""
    if resume is None:
        return None
    checkpoint = resolve_resume(resume, save_dir)
    check_resumable(checkpoint, config)
    done = pickle.loads((checkpoint / STATE_FILE).read_bytes())["epoch"] + 1
    if done >= config.train.epochs:
        raise NothingToDo(f"nothing to do: {checkpoint} finished epoch {done - 1}, the last of train.epochs "
                          f"{config.train.epochs}; pass --epochs N (more than {done}) to train on")
    return checkpoint


def _writable(save_dir: str | Path) -> None:
    """Create ``save_dir``; CheckpointError naming it when that is not possible."""
    try:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"--save-dir {save_dir}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(save_dir, os.W_OK):
        raise CheckpointError(f"--save-dir {save_dir}: not writable")


def _notice_size(config: Config, model: paddle.nn.Layer, device: str, notify: Callback) -> None:
    """On a CPU, say what a seed-size model is and point to the tiny config."""
    parameters = count_parameters(model)
    if device != "cpu" or parameters < LARGE_MODEL:
        return
    tiny = f"{config.model.name}_tiny"
    hint = f"; for a CPU, try --config {tiny}" if tiny in bundled_configs() else ""
    message = (f"{config.model.name}: {parameters / 1e6:.1f} M parameters, {config.train.epochs} epochs at batch "
               f"{config.train.batch_size} (the seed's settings are for multi-GPU runs): this is slow on a CPU{hint}")
    log.info(message)
    notify({"event": "notice", "message": message})


def evaluate_model(model, task: Task, cache: Cache, config: Config) -> dict:
    """Metrics of ``model`` (a layer or an exported model) on ``cache``: the task's evaluator, plus ``avg_loss``."""
    if isinstance(model, paddle.nn.Layer):
        model.eval()
    evaluator = task.evaluator()
    loader = task.loader(cache, batch_size=config.eval.batch_size, num_workers=config.train.num_workers, train=False)
    with paddle.no_grad():
        for batch in loader:
            outputs, loss = task.evaluate_batch(model, batch)
            task.update(evaluator, outputs, batch, loss)
    return {k: _plain_number(v) for k, v in evaluator.summary().items()}


def _plain_number(value):
    """numpy scalars as Python ones (for JSON); counts stay integers."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def evaluate(config: Config, shards: str | os.PathLike, weights: str | Path, *, device: str = "cpu") -> dict:
    """Load ``weights`` (checkpoint folder, .pdparams, or exported model) and evaluate them on ``shards``."""
    task = make_task(config)
    cache = task.open(shards)
    runtime.prepare(device, cpu_threads=config.train.cpu_threads, num_workers=config.train.num_workers)
    return evaluate_model(_scorer(config, weights), task, cache, config)


def _scorer(config: Config, weights: str | Path):
    """What maps model inputs to outputs: the exported inference model, or config + weights."""
    if is_exported(weights):
        try:
            layer = paddle.jit.load(str(Path(weights) / EXPORT_PREFIX))
        except Exception as exc:  # paddle raises many kinds of errors on a damaged model file
            raise CheckpointError(f"{weights}: cannot load the exported model ({exc})") from exc
    else:
        layer = build_model(config)
        load_weights(layer, weights)
    layer.eval()
    return layer


def predict(config: Config, shards: str | os.PathLike, weights: str | Path, out: str | Path, *, top_k: int = 20,
            device: str = "cpu") -> int:
    """Write the task's prediction records for every video of ``shards`` to ``out`` (in the task's
    result format, JSON lines by default; written to a temporary name and renamed when complete);
    returns their number.

    ``weights`` is a checkpoint folder, a .pdparams file, or a folder made by :func:`export`;
    class names saved with it go into the records.
    """
    task = make_task(config)
    cache = task.open(shards, labels=False)
    runtime.prepare(device, cpu_threads=config.train.cpu_threads, num_workers=config.train.num_workers)
    model = _scorer(config, weights)
    loader = task.loader(cache, batch_size=config.eval.batch_size, num_workers=config.train.num_workers, train=False)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f, paddle.no_grad():
            results = ((task.predict_batch(model, batch), batch) for batch in loader)
            count = task.write_predictions(task.predictions(results, cache, top_k=top_k,
                                                            classes=read_classes(weights)), f)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def predict_files(config: Config, weights: str | Path, paths: list[str], *, top_k: int = 5,
                  options: dict | None = None, device: str = "cpu") -> list[tuple[str, dict | str]]:
    """``(path, record)`` for each raw input file the task could read, ``(path, reason)`` for each
    it could not (see ``Task.raw_inputs``)."""
    task = make_task(config)
    if task.raw_inputs is None:
        raise CheckpointError(f"{config.model.name} reads {task.cache_kinds[0]!r} caches, not raw files; "
                              "pass --shards CACHE")
    runtime.prepare(device, cpu_threads=config.train.cpu_threads, num_workers=0)
    model = _scorer(config, weights)
    with paddle.no_grad():
        return list(task.predict_files(model, paths, top_k=top_k, classes=read_classes(weights),
                                       options=options or {}))


def export(config: Config, weights: str | Path, out_dir: str | Path) -> Path:
    """Save ``config``'s model with ``weights`` as a Paddle inference model (``paddle.jit.save``)."""
    paddle.set_device("cpu")
    model = build_model(config)
    load_weights(model, weights)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.jit.save(model, str(out_dir / EXPORT_PREFIX), input_spec=make_task(config).input_spec())
    dump(config, out_dir / CONFIG_FILE)
    copy_classes(weights, out_dir)
    return out_dir


_said: set[str] = set()


def _scalar_writer(save_dir: str | Path, notify: Callback):
    """A VisualDL writer when VisualDL is installed (an optional extra); otherwise None, said once
    per process."""
    try:
        from visualdl import LogWriter
    except ImportError:
        if "visualdl" not in _said:
            _said.add("visualdl")
            notify({"event": "notice", "message": "VisualDL is not installed: the curves are in SAVE_DIR/metrics.jsonl "
                    "(vtk plot draws them; pip install visualdl for its dashboard)"})
        return None
    return LogWriter(logdir=str(Path(save_dir) / "visualdl"))


def _write_scalars(writer, values: dict, step: int) -> None:
    if writer is None:
        return
    for tag, value in values.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(tag=tag, value=value, step=step)
