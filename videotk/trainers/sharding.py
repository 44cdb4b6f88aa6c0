"""Deterministic, shard-aware reading plans: which records each reader reads in an epoch.

A *reader* is one loader worker of one ``paddle.distributed`` rank: there are
``world_size x num_workers`` readers and reader ``rank * num_workers + worker`` is the
:attr:`ReaderSlot.index`. Every rank computes the same plan from the manifest's shard sizes, the
seed and the epoch, and in one epoch each record goes to exactly one reader:

- The shards are taken in :func:`epoch_order`: a permutation seeded by ``(seed, epoch)`` when
  shuffling, manifest order otherwise.
- With at least as many shards as readers (and ``even=False``), whole shards go to readers: each
  shard in epoch order to the reader with the fewest records so far (ties: fewest shards, then the
  lowest index). A shard file is then opened by one reader only.
- With fewer shards than readers, or ``even=True``, the shards in epoch order are laid end to end
  and cut into one contiguous record range per reader, so no reader idles; a range may start or end
  inside a shard, and is still read in row order.

``even=True`` gives every reader exactly ``records // readers`` records and leaves out the last
``records % readers`` records of the epoch order (other records each epoch when shuffling). Every
worker of every rank then yields the same number of samples, hence every rank the same number of
batches for any batch size: distributed training needs that, since a rank with one batch more waits
forever in the gradient all-reduce. Use it for training with more than one rank; evaluate with
``even=False`` so that no record is left out (ranks may then differ by a batch).
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from itertools import accumulate
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np
import paddle

from ..formats import Cache, open_shard_reader
from .loader import SampleFailure
from .workers import worker_info

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Span:
    """Rows ``start .. stop - 1`` of shard ``shard`` (manifest index)."""

    shard: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ReaderSlot:
    """Where a reader sits: its rank among ``world_size`` and its worker among ``num_workers``."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.world_size and 0 <= self.worker < self.num_workers):
            raise ValueError(
                f"reader out of range: rank {self.rank} of {self.world_size}, worker {self.worker} of {self.num_workers}"
            )

    @property
    def index(self) -> int:
        """This reader's position among all readers, rank-major."""
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        """Readers over all ranks and workers."""
        return self.world_size * self.num_workers


def current_reader(rank: int | None = None, world_size: int | None = None) -> ReaderSlot:
    """The calling process's slot: rank and world size from ``paddle.distributed`` unless given,
    worker from :func:`videotk.trainers.workers.worker_info` or ``paddle.io.get_worker_info()``
    (worker 0 of 1 outside the loaders' workers)."""
    rank = paddle.distributed.get_rank() if rank is None else rank
    world_size = paddle.distributed.get_world_size() if world_size is None else world_size
    info = worker_info() or paddle.io.get_worker_info()
    if info is None:
        return ReaderSlot(rank, world_size)
    return ReaderSlot(rank, world_size, info.id, info.num_workers)


def epoch_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The shard indices in the order epoch ``epoch`` reads them: a permutation seeded by
    ``(seed, epoch)`` when ``shuffle``, ``0 .. num_shards - 1`` otherwise."""
    if not shuffle:
        return list(range(num_shards))
    return np.random.default_rng([seed, epoch]).permutation(num_shards).tolist()


def reading_plan(
    shard_rows: Sequence[int],
    reader: ReaderSlot,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = False,
    even: bool = False,
) -> list[Span]:
    """The spans ``reader`` reads in epoch ``epoch``, in reading order (see the module docstring).

    ``shard_rows`` ``[S]``: the records of each shard, in manifest order.
    """
    order = epoch_order(len(shard_rows), seed=seed, epoch=epoch, shuffle=shuffle)
    if even or len(shard_rows) < reader.count:
        return _range_share(shard_rows, order, reader, even)
    return _whole_shard_share(shard_rows, order, reader)


def _whole_shard_share(rows: Sequence[int], order: list[int], reader: ReaderSlot) -> list[Span]:
    """Whole shards of ``reader``: each shard in ``order`` to the least loaded reader."""
    loads = [(0, 0, index) for index in range(reader.count)]  # (records, shards, reader index)
    mine = []
    for shard in order:
        records, shards, index = heapq.heappop(loads)
        if index == reader.index:
            mine.append(Span(shard, 0, rows[shard]))
        heapq.heappush(loads, (records + rows[shard], shards + 1, index))
    return mine


def _range_share(rows: Sequence[int], order: list[int], reader: ReaderSlot, even: bool) -> list[Span]:
    """Contiguous record range of ``reader`` in the shards of ``order`` laid end to end."""
    total = sum(rows)
    if even:
        size = total // reader.count
        first, last = reader.index * size, (reader.index + 1) * size
    else:
        first, last = reader.index * total // reader.count, (reader.index + 1) * total // reader.count
    return _spans_between(rows, order, first, last)


def _spans_between(rows: Sequence[int], order: list[int], first: int, last: int) -> list[Span]:
    """The spans holding positions ``first .. last - 1`` of the shards of ``order`` end to end."""
    spans, offset = [], 0
    for shard in order:
        start, stop = max(first - offset, 0), min(last - offset, rows[shard])
        if start < stop:
            spans.append(Span(shard, start, stop))
        offset += rows[shard]
    return spans


def read_spans(cache: Cache, spans: Iterable[Span]) -> Iterator[tuple[int, dict]]:
    """``(global index, record)`` for every row of ``spans``, in order.

    Each span is read in row order through a shard reader opened for it and dropped after it, so
    a shard's row groups are read sequentially and a reader keeps one shard file open at a time
    (an epoch over thousands of shards does not pile up open files or cached row groups).
    """
    starts = list(accumulate((entry["rows"] for entry in cache.shards), initial=0))
    for span in spans:
        shard = open_shard_reader(cache.shard_path(span.shard))
        for row in range(span.start, span.stop):
            yield starts[span.shard] + row, shard.read(row)


def buffered_shuffle(items: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """``items`` in a random order that holds at most ``size`` items at a time (a shuffle buffer).

    Once the buffer is full, each arriving item takes the place of a randomly chosen one, which is
    yielded; the items left at the end come out in random order. The same ``rng`` state gives the
    same order; ``size <= 1`` keeps the order.
    """
    if size <= 1:
        yield from items
        return
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


def epoch_records(
    cache: Cache,
    *,
    seed: int,
    epoch: int,
    train: bool,
    shuffle_buffer: int,
    rank: int | None = None,
    world_size: int | None = None,
    even: bool | None = None,
) -> tuple[Iterator[tuple[int, dict]], np.random.Generator]:
    """This reader's ``(global index, record)`` pairs for ``epoch``, and the epoch's random generator.

    The reader is this data worker of this rank (:func:`current_reader`). In training, the
    shard order is shuffled and records pass through a shuffle buffer of ``shuffle_buffer``;
    ``even=None`` means "equal shares" when training on more than one rank.
    """
    reader = current_reader(rank, world_size)
    even = (train and reader.world_size > 1) if even is None else even
    spans = reading_plan([entry["rows"] for entry in cache.shards], reader, seed=seed, epoch=epoch, shuffle=train,
                         even=even)
    log.debug("reader %d of %d, epoch %d: %d records in %d spans",
              reader.index, reader.count, epoch, sum(map(len, spans)), len(spans))
    rng = np.random.default_rng([seed, epoch, reader.index])
    records = read_spans(cache, spans)
    if train:
        records = buffered_shuffle(records, shuffle_buffer, rng)
    return records, rng


class CacheDataset(paddle.io.IterableDataset):
    """An iterable dataset over a cache, read epoch by epoch through :func:`epoch_records`;
    subclasses turn each record into samples with :meth:`samples`.

    Without ``train``, and unless ``rank`` and ``world_size`` are given, every ``paddle.distributed``
    rank reads the whole cache (its data workers share it): evaluation during distributed
    training then scores every record in every rank.

    An exception while reading or making samples ends this reader's iteration with one
    :class:`~videotk.trainers.loader.SampleFailure` naming the cache, the record and the reason,
    which the loader raises in the main process.
    """

    def __init__(self, cache: Cache, *, train: bool, shuffle_buffer: int, seed: int, rank: int | None = None,
                 world_size: int | None = None, even: bool | None = None):
        self.cache = cache
        self.train = train
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        if not train and rank is None and world_size is None:
            # evaluation and prediction read the whole cache in every rank: each rank's metrics are
            # then those of every record (rank 0 logs them), not of its share
            rank, world_size = 0, 1
        self.rank = rank
        self.world_size = world_size
        self.even = even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch``'s order (shard permutation, shuffle buffer, random sampling) next."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict]:
        last, current = None, None
        try:
            records, rng = epoch_records(self.cache, seed=self.seed, epoch=self.epoch, train=self.train,
                                         shuffle_buffer=self.shuffle_buffer, rank=self.rank,
                                         world_size=self.world_size, even=self.even)
            for index, record in records:
                current = (index, record)
                yield from self.samples(index, record, rng if self.train else None)
                last, current = index, None
        except Exception as exc:  # noqa: BLE001  any failure ends the run, with its reason, in the main process
            yield SampleFailure(_failure(self.cache, current, last, exc))

    def samples(self, index: int, record: dict, rng: np.random.Generator | None = None) -> Iterator[dict]:
        """The samples of the record at global ``index``: random ones with ``rng`` (training)."""
        raise NotImplementedError

    def samples_per_record(self) -> int:
        """How many samples :meth:`samples` makes of one record (test views, say)."""
        return 1

    def reader_samples(self, num_workers: int) -> list[int]:
        """Samples each of this rank's ``num_workers`` readers yields in the current epoch."""
        rank = paddle.distributed.get_rank() if self.rank is None else self.rank
        world = paddle.distributed.get_world_size() if self.world_size is None else self.world_size
        rows = [entry["rows"] for entry in self.cache.shards]
        sizes = []
        for worker in range(num_workers):
            reader = ReaderSlot(rank, world, worker, num_workers)
            even = (self.train and world > 1) if self.even is None else self.even
            spans = reading_plan(rows, reader, seed=self.seed, epoch=self.epoch, shuffle=self.train, even=even)
            sizes.append(sum(map(len, spans)) * self.samples_per_record())
        return sizes


def _failure(cache: Cache, current: tuple[int, dict] | None, last: int | None, exc: Exception) -> str:
    """One line naming the cache, the record being made into samples (or the last one read) and
    the reason."""
    if current is not None:
        index, record = current
        video = f" (id {record['id']!r})" if isinstance(record, dict) and "id" in record else ""
        where = f"record {index}{video}"
    else:
        where = "reading the first records" if last is None else f"reading the records after record {last}"
    return f"{cache.path}: {where}: {type(exc).__name__}: {exc}"
