"""The settings of the config sections every task shares: ``train`` and ``eval``."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Count, PositiveInt


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` section.

    ``cpu_threads``: Paddle's CPU threads; None gives it the cores the DataLoader workers leave.
    ``keep_last``: keep only the newest N epoch checkpoints (None keeps all).
    """

    epochs: PositiveInt
    batch_size: PositiveInt
    num_workers: Count = 0
    cpu_threads: PositiveInt | None = None
    seed: int = 0
    log_every: PositiveInt = 20
    keep_last: PositiveInt | None = None


@dataclass(frozen=True)
class EvalSettings:
    """The ``eval`` section shared by every task; a task may add keys in a subclass."""

    batch_size: PositiveInt = 16
