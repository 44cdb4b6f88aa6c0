"""The training loop and its companions (evaluate, predict, export), the same for every model.

Progress is reported through ``callback(event: dict)``: ``{"event": "epoch_start", "epoch",
"steps"}``, ``{"event": "batch"}`` after every batch, ``{"event": "step", "epoch", "step", "loss", "lr", "samples_per_s", "data_wait_s"}``
(every ``train.log_every`` steps) and ``{"event": "epoch_end", "epoch", "loss", "metrics",
"checkpoint"}``. The CLI turns them into a progress bar and log lines.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import paddle

from ..formats import open_cache
from ..models import create_model
from .checkpoint import (
    CONFIG_FILE,
    EXPORT_PREFIX,
    copy_classes,
    epoch_dir,
    is_exported,
    load_checkpoint,
    load_weights,
    read_classes,
    save_checkpoint,
)
from .config import ConfigError, dump
from .optim import build_optimizer, build_scheduler, steps_per_batch
from .tasks import make_task

log = logging.getLogger(__name__)

Callback = Callable[[dict], None]
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


class DeviceError(RuntimeError):
    """The requested device is not available in this Paddle build or machine."""


def select_device(device: str) -> str:
    """Use ``cpu`` or ``gpu``; a GPU request fails clearly when Paddle has no GPU here."""
    if device == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise DeviceError("--device gpu: this Paddle is the CPU build; install paddlepaddle-gpu "
                              "(pip install -e '.[gpu]') or use --device cpu")
        if paddle.device.cuda.device_count() == 0:
            raise DeviceError("--device gpu: Paddle was built with CUDA but sees no GPU on this machine")
    paddle.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def build_model(config: dict) -> paddle.nn.Layer:
    """The config's model; a keyword the model does not take is an error naming the config key."""
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    try:
        return create_model(config["model"]["name"], **kwargs)
    except TypeError as exc:
        raise ConfigError(f"config section model: {exc}") from exc


def _set_threads(train_cfg: dict) -> None:
    """Paddle's CPU threads: ``train.cpu_threads``, or when it is null or absent the cores the data
    workers leave (Paddle's own default is one). Small models run faster on one thread: on two
    cores a tiny ResNet-18 training step took twice as long on two threads as on one, while a
    ResNet-50 at 224 pixels took 0.56 times as long."""
    threads = train_cfg.get("cpu_threads") or max(1, (os.cpu_count() or 1) - train_cfg["num_workers"])
    paddle.base.core.set_num_threads(threads)
    keep_large_buffers()


def keep_large_buffers() -> None:
    """Let glibc reuse freed batch-sized buffers instead of mapping fresh pages for each one.

    A batch of 32 videos x 300 frames is about 44 MB, above glibc's largest automatic mmap
    threshold (32 MB), so every batch would otherwise be mmapped, page-faulted and unmapped: it
    halves the data loader's throughput. DataLoader workers forked later inherit the setting.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 256 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)


def _distributed(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """Wrap for data parallelism when started by ``paddle.distributed.launch`` (more than one rank)."""
    if paddle.distributed.get_world_size() > 1:
        paddle.distributed.init_parallel_env()
        return paddle.DataParallel(model)
    return model


def train(config: dict, shards: str, *, valid_shards: str | None = None, save_dir: str | Path = "output",
          resume: str | Path | None = None, pretrained: str | Path | None = None, device: str = "cpu",
          callback: Callback | None = None) -> dict:
    """Train ``config``'s model on the cache ``shards``; checkpoint every epoch into ``save_dir``.

    Returns ``{"history": [per-step {"epoch", "step", "loss", "lr"}], "metrics": {epoch: ...}}``.
    With ``resume`` (a checkpoint folder), training continues after that epoch and the history
    equals the one of an uninterrupted run with the same seed. ``pretrained``: a local ImageNet
    ``.pdparams`` (paddle.vision ResNet layout) for the backbone; what it loaded is reported as a
    ``{"event": "pretrained", "loaded", "skipped", "missing"}`` callback.
    """
    callback = callback or (lambda event: None)
    select_device(device)
    train_cfg = config["train"]
    seed_everything(train_cfg["seed"])
    _set_threads(train_cfg)
    task = make_task(config)
    model = build_model(config)
    if pretrained and not resume:
        from ..models import load_pretrained

        callback({"event": "pretrained", "path": str(pretrained), **load_pretrained(model, pretrained)})
    model = _distributed(model)
    global_batch = train_cfg["batch_size"] * paddle.distributed.get_world_size()
    scheduler = build_scheduler(config["lr_scheduler"], config["optimizer"]["learning_rate"], global_batch)
    optimizer = build_optimizer(config["optimizer"], model, scheduler)
    start_epoch, step, history, metrics = 0, 0, [], {}
    if resume:
        state = load_checkpoint(resume, model=model, optimizer=optimizer, scheduler=scheduler)
        start_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]
    writer = _scalar_writer(save_dir)
    cache = open_cache(shards)
    num_records = len(cache)
    for epoch in range(start_epoch, train_cfg["epochs"]):
        steps = math.ceil(num_records / global_batch)
        callback({"event": "epoch_start", "epoch": epoch, "steps": steps})
        loader = task.loader(shards, batch_size=train_cfg["batch_size"], num_workers=train_cfg["num_workers"],
                             train=True, epoch=epoch)
        step, losses = _train_epoch(model, task, loader, optimizer, scheduler, config, epoch, step, history,
                                    callback, writer)
        if not steps_per_batch(config["lr_scheduler"]):
            scheduler.step()
        if valid_shards:
            metrics[epoch] = evaluate_model(model, task, valid_shards, config)
            _write_scalars(writer, {f"valid/{k}": v for k, v in metrics[epoch].items()}, step)
        checkpoint = None
        if paddle.distributed.get_rank() == 0:
            checkpoint = save_checkpoint(epoch_dir(save_dir, epoch), model=model, optimizer=optimizer,
                                         scheduler=scheduler, config=config, epoch=epoch, step=step, history=history,
                                         classes=cache.classes)
        callback({"event": "epoch_end", "epoch": epoch, "loss": float(np.mean(losses)) if losses else None,
                  "metrics": metrics.get(epoch), "checkpoint": str(checkpoint) if checkpoint else None})
    if paddle.distributed.get_rank() == 0:
        dump(config, Path(save_dir) / CONFIG_FILE)
    return {"history": history, "metrics": metrics}


def _train_epoch(model, task, loader, optimizer, scheduler, config, epoch, step, history, callback, writer):
    model.train()
    log_every, per_batch = config["train"]["log_every"], steps_per_batch(config["lr_scheduler"])
    losses, samples, wait, window_start = [], 0, 0.0, time.perf_counter()
    fetched = time.perf_counter()
    for batch in loader:
        wait += time.perf_counter() - fetched
        inputs = task.inputs(batch)
        loss = task.loss(model(*inputs), batch)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        lr = optimizer.get_lr()
        if per_batch:
            scheduler.step()
        step += 1
        value = float(loss)
        losses.append(value)
        history.append({"epoch": epoch, "step": step, "loss": value, "lr": lr})
        samples += int(inputs[0].shape[0])
        callback({"event": "batch"})
        if step % log_every == 0:
            elapsed = time.perf_counter() - window_start
            event = {"event": "step", "epoch": epoch, "step": step, "loss": value, "lr": lr,
                     "samples_per_s": samples / elapsed, "data_wait_s": wait}
            callback(event)
            _write_scalars(writer, {"train/loss": value, "train/lr": lr, "train/samples_per_s": event["samples_per_s"],
                                    "train/data_wait_s": wait}, step)
            samples, wait, window_start = 0, 0.0, time.perf_counter()
        fetched = time.perf_counter()
    return step, losses


def evaluate_model(model, task, shards: str, config: dict) -> dict:
    """Metrics of ``model`` on the cache ``shards`` (the task's evaluator, plus ``loss``)."""
    model.eval()
    evaluator = task.evaluator()
    loader = task.loader(shards, batch_size=config["eval"]["batch_size"], num_workers=config["train"]["num_workers"],
                         train=False)
    with paddle.no_grad():
        for batch in loader:
            logits = model(*task.inputs(batch))
            task.update(evaluator, logits, batch, float(task.loss(logits, batch)))
    return {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
            for k, v in evaluator.summary().items()}


def evaluate(config: dict, shards: str, weights: str | Path, *, device: str = "cpu") -> dict:
    """Load ``weights`` (checkpoint folder or .pdparams) into ``config``'s model and evaluate it."""
    select_device(device)
    _set_threads(config["train"])
    model = build_model(config)
    load_weights(model, weights)
    return evaluate_model(model, make_task(config), shards, config)


def _scorer(config: dict, weights: str | Path) -> Callable[[list], paddle.Tensor]:
    """A function from model inputs to logits: the exported inference model, or config + weights."""
    if is_exported(weights):
        layer = paddle.jit.load(str(Path(weights) / EXPORT_PREFIX))
    else:
        layer = build_model(config)
        load_weights(layer, weights)
    layer.eval()
    return lambda inputs: layer(*inputs)


def predict(config: dict, shards: str, weights: str | Path, out: str | Path, *, top_k: int = 20,
            device: str = "cpu") -> int:
    """Write one JSON line per video to ``out``: ``{"id", "classes", "scores"}`` (top ``top_k``,
    scores averaged over the task's test views; ``"names"`` too when the weights know the classes).

    ``weights`` is a checkpoint folder, a .pdparams file, or a folder made by :func:`export`.
    Returns the number of videos.
    """
    select_device(device)
    _set_threads(config["train"])
    task, score = make_task(config), _scorer(config, weights)
    ids, names = open_cache(shards).column("id"), read_classes(weights)
    loader = task.loader(shards, batch_size=config["eval"]["batch_size"], num_workers=config["train"]["num_workers"],
                         train=False)
    pending: dict[int, tuple[np.ndarray, int]] = {}
    count = 0
    with open(out, "w", encoding="utf-8") as f, paddle.no_grad():
        for batch in loader:
            scores = task.scores(score(task.inputs(batch)))
            for row, index in enumerate(batch["index"].numpy().tolist()):
                total, views = pending.pop(index, (0.0, 0))
                total, views = total + scores[row], views + 1
                if views < task.views:
                    pending[index] = (total, views)
                    continue
                f.write(json.dumps({"id": ids[index], **top_classes(total / views, top_k, names)}) + "\n")
                count += 1
    return count


def predict_records(config: dict, weights: str | Path, records: list[dict], *, top_k: int = 5,
                    device: str = "cpu") -> list[dict]:
    """Top classes of decoded videos (dicts shaped like cache records), over the task's test views."""
    select_device(device)
    task, score = make_task(config), _scorer(config, weights)
    names = read_classes(weights)
    results = []
    with paddle.no_grad():
        for record in records:
            views = paddle.to_tensor(task.views_of(record))
            scores = task.scores(score([task.model_input(views)])).mean(axis=0)
            results.append(top_classes(scores, top_k, names))
    return results


def top_classes(scores: np.ndarray, top_k: int, names: list[str] | None) -> dict:
    """``{"classes", "scores"[, "names"]}`` of the ``top_k`` best of ``scores`` ``[C]``."""
    top = np.argsort(-scores, kind="stable")[:top_k]
    result = {"classes": top.tolist(), "scores": [round(float(s), 6) for s in scores[top]]}
    if names:
        result["names"] = [names[i] if i < len(names) else str(i) for i in top.tolist()]
    return result


def export(config: dict, weights: str | Path, out_dir: str | Path) -> Path:
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


def _scalar_writer(save_dir: str | Path):
    """A VisualDL writer when VisualDL is installed (optional extra), else None."""
    try:
        from visualdl import LogWriter
    except ImportError:
        return None
    return LogWriter(logdir=str(Path(save_dir) / "visualdl"))


def _write_scalars(writer, values: dict, step: int) -> None:
    if writer is None:
        return
    for tag, value in values.items():
        if isinstance(value, (int, float)):
            writer.add_scalar(tag=tag, value=value, step=step)
