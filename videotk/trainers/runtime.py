"""Where a run executes: device, CPU threads, allocator, random seeds, data parallelism and precision.

Everything the training loop needs from the machine goes through here, so the loop itself holds no
device or process logic. Under ``python -m paddle.distributed.launch`` each rank is one process;
:func:`data_parallel` wraps the model and :func:`is_main` tells which rank writes files.
:func:`sync_batch_norm` and :func:`mixed_precision` apply ``train.sync_bn`` and ``train.amp`` where
Paddle runs them (GPUs) and say what happens instead elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import sys

import numpy as np
import paddle

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


class DeviceError(RuntimeError):
    """The requested device is not available in this Paddle build or machine."""


def select_device(device: str) -> str:
    """Use ``cpu`` or ``gpu``; a GPU request fails clearly when Paddle has no GPU here."""
    if device not in ("cpu", "gpu"):
        raise DeviceError(f"--device {device}: expected cpu or gpu")
    if device == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise DeviceError("--device gpu: this Paddle is the CPU build; install paddlepaddle-gpu "
                              "(pip install -e '.[gpu]') or use --device cpu")
        if paddle.device.cuda.device_count() == 0:
            raise DeviceError("--device gpu: Paddle was built with CUDA but sees no GPU on this machine")
    paddle.set_device(device)
    return device


def prepare(device: str, *, cpu_threads: int | None, num_workers: int, seed: int | None = None) -> None:
    """Set up this process for a run: device, Paddle's CPU threads, the allocator, the seeds."""
    select_device(device)
    set_threads(cpu_threads, num_workers)
    keep_large_buffers()
    if seed is not None:
        seed_everything(seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def set_threads(cpu_threads: int | None, num_workers: int) -> int:
    """Paddle's CPU threads: ``cpu_threads``, or when None the cores the data workers leave
    (Paddle's own default is one). Small models run faster on one thread: on two cores a tiny
    ResNet-18 training step took twice as long on two threads as on one, while a ResNet-50 at 224
    pixels took 0.56 times as long."""
    threads = cpu_threads or max(1, (os.cpu_count() or 1) - num_workers)
    paddle.base.core.set_num_threads(threads)
    return threads


def keep_large_buffers() -> None:
    """Let glibc reuse freed batch-sized buffers instead of mapping fresh pages for each one.

    A batch of 32 videos x 300 frames is about 44 MB, above glibc's largest automatic mmap
    threshold (32 MB), so every batch would otherwise be mmapped, page-faulted and unmapped: it
    halves the data loader's throughput. Data workers forked later inherit the setting.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 256 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)


def world_size() -> int:
    """Ranks of this run (1 outside ``paddle.distributed.launch``)."""
    return paddle.distributed.get_world_size()


def rank() -> int:
    """This process's rank (0 outside ``paddle.distributed.launch``)."""
    return paddle.distributed.get_rank()


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes checkpoints, logs and metrics."""
    return rank() == 0


def data_parallel(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """``model`` wrapped for data parallelism when started by ``paddle.distributed.launch`` with
    more than one rank; the model itself otherwise."""
    if world_size() > 1:
        paddle.distributed.init_parallel_env()
        return paddle.DataParallel(model)
    return model


def unwrapped(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The model inside a ``paddle.DataParallel`` wrapper (itself when not wrapped)."""
    return model._layers if isinstance(model, paddle.DataParallel) else model


#: the layers ``paddle.nn.SyncBatchNorm.convert_sync_batchnorm`` converts
_BATCH_NORMS = (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D)


def sync_batch_norm(model: paddle.nn.Layer, *, enabled: bool, device: str) -> tuple[paddle.nn.Layer, str | None]:
    """``model`` with its batch-norm layers as ``paddle.nn.SyncBatchNorm`` when ``enabled`` on a GPU,
    and what a user should be told about it (None when nothing).

    On a CPU the layers stay as they are: Paddle's SyncBatchNorm runs on GPUs only, so each rank
    normalises with the statistics of its own batch.
    """
    if not enabled:
        return model, None
    norms = [layer for layer in model.sublayers(include_self=True) if isinstance(layer, _BATCH_NORMS)]
    if not norms:
        return model, f"train.sync_bn: {type(model).__name__} has no batch-norm layers; nothing to synchronise"
    if device != "gpu":
        return model, ("train.sync_bn has no effect on a CPU: Paddle's SyncBatchNorm needs GPUs, so each rank "
                       f"normalises its {len(norms)} batch-norm layers with its own batch statistics")
    return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model), None


class Precision:
    """How a training step runs: float32 (``level`` None), or under ``paddle.amp.auto_cast`` at
    ``level`` in ``dtype``, with a ``paddle.amp.GradScaler`` for float16."""

    def __init__(self, level: str | None = None, dtype: str = "float16"):
        self.level, self.dtype = level, dtype
        self.scaler = paddle.amp.GradScaler() if level is not None and dtype == "float16" else None

    def autocast(self):
        """The context the forward pass and loss run in."""
        if self.level is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(level=self.level, dtype=self.dtype)

    def step(self, loss: paddle.Tensor, optimizer: paddle.optimizer.Optimizer) -> None:
        """Back-propagate ``loss``, update the parameters (skipping a float16 step whose scaled
        gradients overflowed, as GradScaler does) and clear the gradients."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        optimizer.clear_grad()


def mixed_precision(model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, *, level: str | None, dtype: str,
                    device: str) -> tuple[paddle.nn.Layer, paddle.optimizer.Optimizer, Precision, str | None]:
    """``train.amp`` at ``level`` (None, ``O1``, ``O2``) in ``dtype``: the model and optimizer to train
    (decorated by ``paddle.amp.decorate`` for O2, with float32 checkpoints), the :class:`Precision`
    of the steps, and what a user should be told (None when nothing).

    On a CPU the run trains in float32: ``paddle.amp`` enables itself on GPUs, XPUs and custom
    devices only, and Paddle's CPU build has no float16 or bfloat16 matmul kernel to run by hand.
    """
    if level is None:
        return model, optimizer, Precision(), None
    if device != "gpu":
        return model, optimizer, Precision(), (
            f"train.amp {level} ({dtype}) has no effect on a CPU: Paddle runs mixed precision on GPUs only "
            "(its CPU build has no float16 or bfloat16 matrix products); this run trains in float32")
    supported = paddle.amp.is_float16_supported() if dtype == "float16" else paddle.amp.is_bfloat16_supported()
    if not supported:
        raise DeviceError(f"train.amp_dtype {dtype}: this GPU does not run {dtype} (bfloat16 needs compute "
                          "capability 8.0 and CUDA 11, float16 7.0); use the other dtype or train.amp null")
    if level == "O2":
        model, optimizer = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=dtype,
                                               save_dtype="float32")
    return model, optimizer, Precision(level, dtype), None
