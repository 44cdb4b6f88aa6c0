"""Worker processes that make the batches of an iterable dataset and hand them over through shared
memory: the multi-worker path of :func:`~videotk.trainers.loader.make_loader`.

Each worker is forked at the start of an epoch with the dataset as it is then (its epoch set),
iterates it, and writes every sample, as it comes, into its row of a batch in one of its ``slots``
shared-memory blocks (so the worker holds one sample at a time, and each array is copied once, into
its place). When ``batch_size`` samples are in, it sends the slot's number over a Unix socket with a
small header (the batch's structure, the arrays' dtypes, shapes and offsets, its strings); the
training process copies the arrays out into Paddle tensors and gives the slot back. No array is
pickled.

- **Blocks.** A slot is a ``memfd`` block the worker makes (and remakes larger when a batch does
  not fit) and passes once to the training process with the socket (``SCM_RIGHTS``). No file or
  name is left behind, whatever way a process ends: the kernel frees a block with its last user.
- **Order.** Batches come from the workers in turn, as ``paddle.io.DataLoader`` takes them from
  an iterable dataset: worker 0's first batch, worker 1's first, worker 0's second, ...; a worker
  that has run out leaves the round. Each worker reads its own share of the data
  (:func:`worker_info` tells it which; see :mod:`videotk.trainers.sharding`).
- **Depth.** A worker runs up to ``slots`` batches ahead of the training process (2, like the
  DataLoader's ``prefetch_factor``).
- **Failures.** A worker that raises sends its reason and stops; a worker that dies (killed, out of
  memory) is noticed within half a second. Either ends the iteration with ``error(message)``, and
  the other workers are stopped. Workers ignore Ctrl-C: the training process stops them when it
  stops. A stop request (:mod:`videotk.trainers.stop`) is honoured while waiting for a batch.

Why not ``paddle.io.DataLoader``'s workers: on a 2-core machine its hand-over of a batch (the
batch copied into a shared-memory tensor, pickled through a queue, moved by a thread into a
blocking queue) cost the training process more than reading the batch did, so 2 of its workers
delivered no more YouTube-8M samples per second than 0 (these: 1.6x, ``docs/benchmarks.md``); and
a killed worker left its segments in ``/dev/shm``. Linux only (``memfd``); other systems keep the
DataLoader (:func:`available`).
"""

from __future__ import annotations

import mmap
import multiprocessing
import numbers
import os
import pickle
import select
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import stop

ALIGN = 64  # bytes: every array of a batch starts at a multiple of this in its block
SLOTS = 2  # blocks per worker: how many batches it may run ahead
POLL_SECONDS = 0.5  # how often a wait for a batch checks for a stop request or a dead worker
_INLINE_HEADER = 60_000  # bytes: a batch's header up to this size travels with its message
_MESSAGE_BYTES = _INLINE_HEADER + 4096
_FREE = struct.Struct("<i")


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place among the loader's workers (``id`` of ``num_workers``)."""

    id: int
    num_workers: int


_INFO: WorkerInfo | None = None


def worker_info() -> WorkerInfo | None:
    """This worker's :class:`WorkerInfo`; None outside the workers."""
    return _INFO


def available() -> bool:
    """Whether this system runs the workers (Linux: ``memfd``, descriptor passing, ``fork``)."""
    return (hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET")
            and "fork" in multiprocessing.get_all_start_methods())


# -- the structure of a batch -------------------------------------------------------------------
#
# A batch is planned from its first sample: what the default collation (``paddle.io.dataloader.
# collate.default_collate_fn``) makes of the samples (arrays and numbers stacked on a new first
# axis, strings and bytes kept as a list, mappings and sequences field by field), each array given
# its place in the block for ``batch_size`` rows. Every sample is then written into its row as it
# arrives, so a worker holds one sample at a time, not a batch of them. The header that goes to the
# training process is a tree of ("array", dtype, shape, offset), ("value", list), ("dict", {key:
# node}) and ("list", [node]).


def _align(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _as_numpy(value):
    """A paddle.Tensor as a numpy array; anything else as it is."""
    return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else value


class _ArrayField:
    """Rows of one array (or number) field: row ``i`` is sample ``i``'s value."""

    def __init__(self, where: str, dtype: np.dtype, shape: tuple, offset: int):
        self.where, self.dtype, self.shape, self.offset = where, dtype, shape, offset
        self.rows: np.ndarray | None = None

    def start(self, block, batch_size: int) -> None:
        self.rows = np.ndarray((batch_size, *self.shape), self.dtype, buffer=block, offset=self.offset)

    def write(self, row: int, value) -> None:
        value = _as_numpy(value)
        shape = np.shape(value)
        if shape != self.shape:
            raise ValueError(f"{self.where}: the samples of one batch differ in shape: {self.shape} and {shape}")
        self.rows[row] = value

    def header(self, count: int):
        self.rows = None  # the block may be remade: no view of it stays
        return ("array", self.dtype.str, (count, *self.shape), self.offset)


class _ValueField:
    """A field kept as a list (strings, bytes)."""

    def __init__(self, where: str):
        self.where, self.values = where, []

    def start(self, block, batch_size: int) -> None:
        self.values = []

    def write(self, row: int, value) -> None:
        self.values.append(value)

    def header(self, count: int):
        return ("value", self.values)


class _DictField:
    def __init__(self, where: str, fields: dict):
        self.where, self.fields = where, fields

    def start(self, block, batch_size: int) -> None:
        for field in self.fields.values():
            field.start(block, batch_size)

    def write(self, row: int, value) -> None:
        if not isinstance(value, Mapping) or value.keys() != self.fields.keys():
            keys = sorted(map(str, value.keys())) if isinstance(value, Mapping) else type(value).__name__
            raise ValueError(f"{self.where}: the samples of one batch differ in their keys: "
                             f"{sorted(map(str, self.fields))} and {keys}")
        for key, field in self.fields.items():
            field.write(row, value[key])

    def header(self, count: int):
        return ("dict", {key: field.header(count) for key, field in self.fields.items()})


class _ListField:
    def __init__(self, where: str, fields: list):
        self.where, self.fields = where, fields

    def start(self, block, batch_size: int) -> None:
        for field in self.fields:
            field.start(block, batch_size)

    def write(self, row: int, value) -> None:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or len(value) != len(self.fields):
            raise ValueError(f"{self.where}: the samples of one batch differ in their number of fields")
        for field, item in zip(self.fields, value):
            field.write(row, item)

    def header(self, count: int):
        return ("list", [field.header(count) for field in self.fields])


class Plan:
    """Where the fields of a batch of up to ``batch_size`` samples like ``sample`` go in a block:
    :attr:`nbytes` bytes of arrays. A sample holding something else than arrays, numbers, strings,
    bytes, and dicts and lists of them raises TypeError naming the field."""

    def __init__(self, sample, batch_size: int):
        self.batch_size = batch_size
        self.nbytes = 0
        self.root = self._plan(sample, "sample")
        self.count = 0

    def _plan(self, value, where: str):
        value = _as_numpy(value)
        if isinstance(value, (np.ndarray, numbers.Number)):
            value = np.asarray(value)
            offset = _align(self.nbytes)
            self.nbytes = offset + self.batch_size * value.nbytes
            return _ArrayField(where, value.dtype, value.shape, offset)
        if isinstance(value, (str, bytes)):
            return _ValueField(where)
        if isinstance(value, Mapping):
            return _DictField(where, {key: self._plan(item, f"{where}[{key!r}]") for key, item in value.items()})
        if isinstance(value, Sequence):
            return _ListField(where, [self._plan(item, f"{where}[{i}]") for i, item in enumerate(value)])
        raise TypeError(f"{where}: a sample holds {type(value).__name__}; samples hold arrays, numbers, "
                        "strings, bytes, and dicts and lists of them")

    def start(self, block) -> None:
        """Write the next samples into ``block`` (at least :attr:`nbytes` long)."""
        self.count = 0
        self.root.start(block, self.batch_size)

    def add(self, sample) -> None:
        """Write ``sample`` into the next row. Its arrays are cast to the first sample's dtypes."""
        self.root.write(self.count, sample)
        self.count += 1

    def full(self) -> bool:
        return self.count == self.batch_size

    def header(self):
        """The batch written so far, as the training process reads it (and no view of the block kept)."""
        return self.root.header(self.count)


class WholeBatch:
    """A batch already collated (by a loader's own ``collate``: padding, say), laid out as it is:
    its arrays (and numbers) each placed whole in the block, everything else (strings, lists of
    them) kept as a value. Mappings and sequences holding arrays are laid out item by item."""

    def __init__(self, batch):
        self.nbytes = 0
        self.arrays: list[tuple[int, np.ndarray]] = []
        self.tree = self._plan(batch)

    def _plan(self, value):
        value = _as_numpy(value)
        if isinstance(value, (np.ndarray, numbers.Number)):
            value = np.asarray(value)
            offset = _align(self.nbytes)
            self.nbytes = offset + value.nbytes
            self.arrays.append((offset, value))
            return ("array", value.dtype.str, value.shape, offset)
        if isinstance(value, Mapping):
            return ("dict", {key: self._plan(item) for key, item in value.items()})
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and any(
                isinstance(item, (np.ndarray, Mapping)) or hasattr(item, "numpy") for item in value):
            return ("list", [self._plan(item) for item in value])
        return ("value", value)

    def write(self, block) -> None:
        for offset, array in self.arrays:
            np.ndarray(array.shape, array.dtype, buffer=block, offset=offset)[...] = array

    def header(self):
        self.arrays = []
        return self.tree


def build(tree, block, convert: Callable[[np.ndarray], Any]):
    """The batch ``tree`` describes, its arrays read from ``block`` through ``convert`` (which must
    copy them: the block is written again once the batch is given back)."""
    kind = tree[0]
    if kind == "array":
        _, dtype, shape, offset = tree
        return convert(np.ndarray(shape, np.dtype(dtype), buffer=block, offset=offset))
    if kind == "value":
        return tree[1]
    if kind == "dict":
        return {key: build(node, block, convert) for key, node in tree[1].items()}
    return [build(node, block, convert) for node in tree[1]]


# -- the worker side ----------------------------------------------------------------------------


def _block(size: int, name: str) -> tuple[int, mmap.mmap]:
    """A new memfd of at least ``size`` bytes, and its mapping."""
    size = max(-(-size // mmap.PAGESIZE) * mmap.PAGESIZE, mmap.PAGESIZE)
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return fd, mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise


class _Blocks:
    """A worker's slots: writes batches into them and tells the training process."""

    def __init__(self, sock: socket.socket, slots: int):
        self.sock = sock
        self.free = deque(range(slots))
        self.maps: list[mmap.mmap | None] = [None] * slots
        self.slot: int | None = None
        self.new_fd: int | None = None

    def _next_slot(self) -> int:
        while not self.free:
            data = self.sock.recv(_MESSAGE_BYTES)
            if not data:
                raise BrokenPipeError("the training process closed the connection")
            self.free.append(_FREE.unpack(data)[0])
        return self.free.popleft()

    def _reserve(self, nbytes: int) -> mmap.mmap:
        """The next free slot's block, made at least ``nbytes`` long."""
        slot = self.slot = self._next_slot()
        block = self.maps[slot]
        if block is None or len(block) < nbytes:
            if block is not None:
                block.close()
            self.new_fd, block = _block(nbytes, f"videotk-batch-{slot}")
            self.maps[slot] = block
        return block

    def start(self, sample, batch_size: int) -> Plan:
        """A batch beginning with ``sample``, written into the next free slot (made large enough)."""
        plan = Plan(sample, batch_size)
        plan.start(self._reserve(plan.nbytes))
        plan.add(sample)
        return plan

    def send_whole(self, batch) -> None:
        """Write a collated batch into the next free slot and send it."""
        whole = WholeBatch(batch)
        whole.write(self._reserve(whole.nbytes))
        self.send(whole)

    def send(self, plan: "Plan | WholeBatch") -> None:
        header = pickle.dumps(plan.header(), protocol=pickle.HIGHEST_PROTOCOL)
        fds = [] if self.new_fd is None else [self.new_fd]
        inline = len(header) <= _INLINE_HEADER
        if not inline:  # a batch of long strings, say: the header goes in a block of its own
            fd, block = _block(len(header), "videotk-header")
            block[: len(header)] = header
            block.close()
            fds.append(fd)
        message = pickle.dumps(("batch", self.slot, self.new_fd is not None, header if inline else len(header)))
        try:
            if fds:
                socket.send_fds(self.sock, [message], fds)
            else:
                self.sock.send(message)
        finally:
            for fd in fds:
                os.close(fd)
            self.new_fd = self.slot = None

    def say(self, kind: str, text: str = "") -> None:
        self.sock.send(pickle.dumps((kind, text[:_INLINE_HEADER])))

    def linger(self) -> None:
        """Read what the training process still sends until it closes the connection: a worker
        that left messages unread would make the kernel reset the connection on the other side,
        losing this worker's last words."""
        while self.sock.recv(_MESSAGE_BYTES):
            pass


def _work(dataset: Iterable, worker: int, num_workers: int, batch_size: int, sock: socket.socket, slots: int,
          failure: Callable[[list], str | None], inherited: list[socket.socket],
          collate: Callable[[list], Any] | None = None) -> None:
    """A worker's life: batches of ``dataset`` until it runs out, then "end"; its first failure
    (``failure([sample])``, or an exception) instead, then nothing more. With ``collate``, each
    batch's samples are kept until it is full and handed to it (see :class:`ProcessBatches`)."""
    global _INFO
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in inherited:  # the other workers' connections: holding them would hide their ends
        other.close()
    _INFO = WorkerInfo(worker, num_workers)
    blocks = _Blocks(sock, slots)
    try:
        plan, held = None, []
        for sample in dataset:
            reason = failure([sample])
            if reason is not None:
                blocks.say("failure", reason)
                return
            if collate is not None:
                held.append(sample)
                if len(held) == batch_size:
                    blocks.send_whole(collate(held))
                    held = []
                continue
            if plan is None:
                plan = blocks.start(sample, batch_size)
            else:
                plan.add(sample)
            if plan.full():
                blocks.send(plan)
                plan = None
        if plan is not None:
            blocks.send(plan)
        if held:
            blocks.send_whole(collate(held))
        blocks.say("end")
    except (BrokenPipeError, ConnectionError):
        return  # the training process has stopped listening: nothing to tell
    except BaseException as exc:  # noqa: BLE001  told to the training process, which raises it
        try:
            blocks.say("failure", f"data worker {worker}: {type(exc).__name__}: {exc}")
        except OSError:
            return
    finally:
        try:
            blocks.linger()
        except OSError:
            pass


# -- the training-process side ------------------------------------------------------------------


class _Worker:
    def __init__(self, index: int, process, sock: socket.socket, slots: int):
        self.index = index
        self.process = process
        self.sock = sock
        self.maps: list[mmap.mmap | None] = [None] * slots

    def receive(self, error: type[Exception]) -> tuple:
        """The worker's next message (``kind, ...``) and a block descriptor if one came with it;
        waits, checking for a stop request and for the worker's death."""
        while True:
            stop.check()
            ready, _, _ = select.select([self.sock, self.process.sentinel], [], [], POLL_SECONDS)
            if self.sock in ready or (ready and self._pending()):
                try:
                    data, fds, _, _ = socket.recv_fds(self.sock, _MESSAGE_BYTES, 2)
                except ConnectionResetError:  # it ended with messages of ours unread: killed
                    data = b""
                if data:
                    return pickle.loads(data), fds
            if ready:
                self.process.join(1)
                raise error(f"data worker {self.index} ended without finishing its share of the epoch "
                            f"({_exit_reason(self.process.exitcode)})")

    def _pending(self) -> bool:
        ready, _, _ = select.select([self.sock], [], [], 0)
        return bool(ready)

    def block(self, slot: int, fds: list[int]) -> mmap.mmap:
        if fds:
            old, self.maps[slot] = self.maps[slot], mmap.mmap(fds[0], 0)
            os.close(fds[0])
            _close(old)
        return self.maps[slot]

    def release(self, slot: int) -> None:
        try:
            self.sock.send(_FREE.pack(slot))
        except OSError:
            pass  # the worker is gone; the next wait for it says so

    def close(self) -> None:
        self.sock.close()  # a worker waiting for a free slot reads the end and returns
        self.process.join(0.2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        for index, block in enumerate(self.maps):
            _close(block)
            self.maps[index] = None


def _read_header(fd: int, length: int) -> bytes:
    try:
        with mmap.mmap(fd, length, prot=mmap.PROT_READ) as block:
            return block[:length]
    finally:
        os.close(fd)


def _close(block: mmap.mmap | None) -> None:
    if block is None:
        return
    try:
        block.close()
    except BufferError:
        pass  # an array still looks into it: it is unmapped with that array


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = "; out of memory?" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"


class ProcessBatches:
    """The batches of ``dataset`` (an iterable dataset whose iteration reads this worker's share,
    :func:`worker_info`) from ``num_workers`` worker processes, arrays as ``convert`` makes them
    (``paddle.to_tensor``, say). Iterable once per epoch; each iteration forks new workers.

    ``failure(samples)``: the reason a batch's samples stand for a failure of their reader, or None;
    the iteration then raises ``error(reason)``, as it does for a worker that fails or dies.

    ``collate(samples)``: instead of the default collation written row by row, a function making a
    batch of numpy arrays (and strings) from a list of samples, run in the worker; its arrays are
    then copied into the block whole (a padding collation, whose shapes depend on every sample).
    """

    def __init__(self, dataset: Iterable, *, batch_size: int, num_workers: int, convert: Callable[[np.ndarray], Any],
                 failure: Callable[[list], str | None] = lambda samples: None,
                 error: type[Exception] = RuntimeError, slots: int = SLOTS,
                 collate: Callable[[list], Any] | None = None):
        if num_workers < 1 or batch_size < 1 or slots < 1:
            raise ValueError(f"need at least one worker, sample per batch and slot; got {num_workers}, "
                             f"{batch_size}, {slots}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.convert = convert
        self.failure = failure
        self.error = error
        self.slots = slots
        self.collate = collate

    def __iter__(self) -> Iterator:
        context = multiprocessing.get_context("fork")
        workers: list[_Worker] = []
        try:
            for index in range(self.num_workers):
                mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                process = context.Process(
                    target=_work, name=f"videotk-data-worker-{index}", daemon=True,
                    args=(self.dataset, index, self.num_workers, self.batch_size, theirs, self.slots, self.failure,
                          [worker.sock for worker in workers] + [mine], self.collate))
                process.start()
                theirs.close()
                workers.append(_Worker(index, process, mine, self.slots))
            turn = deque(workers)
            while turn:
                worker = turn[0]
                message, fds = worker.receive(self.error)
                kind = message[0]
                if kind == "batch":
                    _, slot, new_block, header = message
                    block = worker.block(slot, fds[:1] if new_block else [])
                    if not isinstance(header, bytes):
                        header = _read_header(fds[-1], header)
                    batch = build(pickle.loads(header), block, self.convert)
                    worker.release(slot)
                    turn.rotate(-1)
                    yield batch
                elif kind == "end":
                    turn.popleft()
                    worker.close()
                else:
                    raise self.error(message[1])
        finally:
            for worker in workers:
                worker.close()
