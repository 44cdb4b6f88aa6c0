"""The settings of the config sections every task shares: ``train`` and ``eval``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .settings import Count, PositiveInt


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` section.

    ``cpu_threads``: Paddle's CPU threads; None gives it the cores the data workers leave.
    ``keep_last``: keep only the newest N epoch checkpoints (None keeps all).
    ``amp``: Paddle's automatic mixed precision on GPUs (:func:`~videotk.trainers.runtime.mixed_precision`):
    null trains in float32; ``O1`` runs the ops Paddle lists as safe (matmul, convolution) in
    ``amp_dtype`` and keeps float32 weights; ``O2`` also keeps the weights in ``amp_dtype``, with
    float32 master copies in the optimizer (checkpoints stay float32). ``float16`` scales the loss
    (``paddle.amp.GradScaler``) so that small gradients do not underflow; ``bfloat16`` needs no
    scaling (GPUs of compute capability 8.0 and up). On a CPU the run trains in float32 and says so:
    Paddle's CPU build runs neither dtype's matrix products.
    ``sync_bn``: under data parallelism on GPUs, batch-norm layers become ``paddle.nn.SyncBatchNorm``,
    which normalises with the statistics of the global batch rather than each rank's; on a CPU each
    rank keeps its own batch statistics (Paddle's SyncBatchNorm needs GPUs), and the run says so.
    """

    epochs: PositiveInt
    batch_size: PositiveInt
    num_workers: Count = 0
    cpu_threads: PositiveInt | None = None
    seed: int = 0
    log_every: PositiveInt = 20
    keep_last: PositiveInt | None = None
    amp: Literal["O1", "O2"] | None = None
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    sync_bn: bool = False


@dataclass(frozen=True)
class EvalSettings:
    """The ``eval`` section shared by every task; a task may add keys in a subclass."""

    batch_size: PositiveInt = 16
