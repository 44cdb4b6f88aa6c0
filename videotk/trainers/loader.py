"""Batches of a cache dataset, with an exact step count and with errors that end the run instead of
hanging it: from worker processes that hand batches over through shared memory
(:mod:`videotk.trainers.workers`), or with 0 workers (and where those workers do not run) through
``paddle.io.DataLoader``.

Every reader (a worker, or the DataLoader's own thread with 0 workers) batches its own
share of the records, so an epoch runs ``sum(ceil(samples_of_reader / batch_size))`` batches:
:attr:`Loader.steps` is that number, computed from the reading plan before the epoch starts.

An exception inside a reader would otherwise end that worker with a traceback on stderr and leave
the main process with an opaque "blocking queue is killed" error (or, with 0 workers, waiting
forever). Here the dataset catches it and passes its message on in place of a batch; the main
process raises it as :class:`DataError`, as it does when a worker process dies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import paddle
from paddle.io.dataloader.collate import default_collate_fn

from . import stop, workers

FAILURE_KEY = "__reader_failure__"


class DataError(RuntimeError):
    """A reader failed while making samples; the message names the cache, record and reason."""


@dataclass(frozen=True)
class SampleFailure:
    """Stands in for the samples of a reader that failed: the reason, as text."""

    message: str


def collate(samples: list) -> dict:
    """Paddle's default collation, or the failure of the first :class:`SampleFailure` among ``samples``."""
    reason = failure_of(samples)
    if reason is not None:
        return {FAILURE_KEY: np.frombuffer(reason.encode("utf-8"), np.uint8).copy()}
    return default_collate_fn(samples)


def failure_of(samples: list) -> str | None:
    """The reason of the first :class:`SampleFailure` among ``samples``, or None."""
    for sample in samples:
        if isinstance(sample, SampleFailure):
            return sample.message
    return None


class Loader:
    """Iterates the batches of one epoch; ``len()`` and :attr:`steps` are their exact number,
    :attr:`samples` the samples in them."""

    def __init__(self, dataloader, steps: int, samples: int):
        self.dataloader = dataloader
        self.steps = steps
        self.samples = samples

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict]:
        for batch in self.dataloader:
            stop.check()
            if FAILURE_KEY in batch:
                raise DataError(bytes(batch[FAILURE_KEY].numpy()).decode("utf-8"))
            yield batch


def make_loader(dataset, *, batch_size: int, num_workers: int, paddle_workers: bool = False,
                collate_fn: Callable[[list], Any] | None = None) -> Loader:
    """A :class:`Loader` of ``dataset`` (a :class:`~videotk.trainers.sharding.CacheDataset`).

    With workers, they are videotk's (:class:`~videotk.trainers.workers.ProcessBatches`), or
    ``paddle.io.DataLoader``'s with ``paddle_workers`` or where those do not run. ``collate_fn``
    replaces the default collation: it makes a batch of numpy arrays from a list of samples (and
    passes a :class:`SampleFailure` among them on as :func:`collate` does)."""
    if num_workers > 0 and not paddle_workers and workers.available():
        dataloader = workers.ProcessBatches(dataset, batch_size=batch_size, num_workers=num_workers,
                                            convert=paddle.to_tensor, failure=failure_of, error=DataError,
                                            collate=collate_fn)
    else:
        dataloader = paddle.io.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                          collate_fn=collate_fn or collate)
    sizes = dataset.reader_samples(max(num_workers, 1))
    return Loader(dataloader, sum(math.ceil(size / batch_size) for size in sizes), sum(sizes))
