"""Where a run executes: device, CPU threads, allocator, random seeds, and data parallelism.

Everything the training loop needs from the machine goes through here, so the loop itself holds no
device or process logic. Under ``python -m paddle.distributed.launch`` each rank is one process;
:func:`data_parallel` wraps the model and :func:`is_main` tells which rank writes files.
"""

from __future__ import annotations

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


def world_size() -> int:
    """Ranks of this run (1 outside ``paddle.distributed.launch``)."""
    return paddle.distributed.get_world_size()


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes checkpoints, logs and metrics."""
    return paddle.distributed.get_rank() == 0


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
