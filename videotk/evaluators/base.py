"""The protocol every evaluator follows, and the mean loss they all report.

An evaluator accumulates batches of numpy arrays and summarises them::

    evaluator.update(*arrays, loss=batch_mean_loss)   # once per batch; arrays as each evaluator documents
    evaluator.summary()                               # {metric: number}, JSON-serialisable
    evaluator.reset()                                 # forget every batch

Accumulating batch by batch gives the same numbers as one call on all inputs at once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Evaluator(Protocol):
    def update(self, *arrays: np.ndarray, loss: float | None = None) -> object:
        """Add one batch."""

    def summary(self) -> dict:
        """The metrics of every batch added since the last reset."""

    def reset(self) -> None:
        """Forget every batch."""


class MeanLoss:
    """The mean over examples of batch-mean losses, each batch weighted by its example count."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, loss: float, examples: int) -> None:
        self.total += float(loss) * examples
        self.count += examples

    def into(self, summary: dict) -> dict:
        """``summary`` with ``avg_loss`` added when any loss was given."""
        if self.count:
            summary["avg_loss"] = self.total / self.count
        return summary
