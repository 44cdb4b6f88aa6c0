"""Batches of a cache dataset through ``paddle.io.DataLoader``, with an exact step count and with
errors that end the run instead of hanging it.

Every reader (a DataLoader worker, or the loader's own thread with 0 workers) batches its own
share of the records, so an epoch runs ``sum(ceil(samples_of_reader / batch_size))`` batches:
:attr:`Loader.steps` is that number, computed from the reading plan before the epoch starts.

An exception inside a reader would otherwise end that worker with a traceback on stderr and leave
the main process with an opaque "blocking queue is killed" error (or, with 0 workers, waiting
forever). Here the dataset catches it and passes its message on in place of a batch; the main
process raises it as :class:`DataError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import paddle
from paddle.io.dataloader.collate import default_collate_fn

from . import stop

FAILURE_KEY = "__reader_failure__"


class DataError(RuntimeError):
    """A reader failed while making samples; the message names the cache, record and reason."""


@dataclass(frozen=True)
class SampleFailure:
    """Stands in for the samples of a reader that failed: the reason, as text."""

    message: str


def collate(samples: list) -> dict:
    """Paddle's default collation, or the failure of the first :class:`SampleFailure` among ``samples``."""
    for sample in samples:
        if isinstance(sample, SampleFailure):
            return {FAILURE_KEY: np.frombuffer(sample.message.encode("utf-8"), np.uint8).copy()}
    return default_collate_fn(samples)


class Loader:
    """Iterates the batches of one epoch; ``len()`` and :attr:`steps` are their exact number,
    :attr:`samples` the samples in them."""

    def __init__(self, dataloader: paddle.io.DataLoader, steps: int, samples: int):
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


def make_loader(dataset, *, batch_size: int, num_workers: int) -> Loader:
    """A :class:`Loader` of ``dataset`` (a :class:`~videotk.trainers.sharding.CacheDataset`)."""
    dataloader = paddle.io.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    sizes = dataset.reader_samples(max(num_workers, 1))
    return Loader(dataloader, sum(math.ceil(size / batch_size) for size in sizes), sum(sizes))
