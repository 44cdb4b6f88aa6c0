"""The loader's worker processes: batches equal to the default collation, in the DataLoader's order,
and every way a worker can fail ends the iteration with one clear error and no process left."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import paddle
import pytest
from paddle.io.dataloader.collate import default_collate_fn

from videotk.trainers import stop, workers
from videotk.trainers.loader import DataError, make_loader

pytestmark = pytest.mark.skipif(not workers.available(), reason="the worker processes need Linux (memfd)")


class Numbered:
    """Samples ``0 .. count - 1``; a worker makes those of its own id modulo the workers."""

    def __init__(self, count: int, make=None):
        self.count = count
        self.make = make or self.sample

    @staticmethod
    def sample(i: int) -> dict:
        return {
            "frames": np.full((2, 3), i, np.uint8),
            "score": np.float32(i) / 2,
            "label": i,
            "id": f"video-{i}",
            "pair": [np.arange(i, i + 2, dtype=np.int64), float(i)],
        }

    def share(self) -> range:
        info = workers.worker_info()
        return range(self.count) if info is None else range(info.id, self.count, info.num_workers)

    def __iter__(self):
        for i in self.share():
            yield self.make(i)


def batches(dataset, batch_size=3, num_workers=2, **kwargs) -> list:
    return list(workers.ProcessBatches(dataset, batch_size=batch_size, num_workers=num_workers,
                                       convert=np.array, **kwargs))


def expected(count: int, batch_size: int, num_workers: int) -> list:
    """The default collation of each worker's batches, taken in turn (the DataLoader's order)."""
    per_worker = []
    for worker in range(num_workers):
        mine = [Numbered.sample(i) for i in range(worker, count, num_workers)]
        per_worker.append([default_collate_fn(mine[i:i + batch_size]) for i in range(0, len(mine), batch_size)])
    out = []
    for turn in range(max(map(len, per_worker))):
        out.extend(queue[turn] for queue in per_worker if turn < len(queue))
    return out


def assert_same(got, want) -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, list) and want and isinstance(want[0], str):
        assert got == want
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    else:
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def no_workers_left() -> bool:
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


@pytest.mark.parametrize("count, batch_size, num_workers", [(11, 3, 2), (7, 8, 2), (5, 2, 3), (1, 4, 2)])
def test_batches_equal_the_default_collation_in_turn(count, batch_size, num_workers):
    # uneven shares, a last short batch, a batch larger than a share, a worker with nothing to read
    got = batches(Numbered(count), batch_size, num_workers)
    want = expected(count, batch_size, num_workers)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w)
    assert no_workers_left()


def test_every_epoch_forks_fresh_workers_and_reads_again():
    loader = workers.ProcessBatches(Numbered(6), batch_size=2, num_workers=2, convert=np.array)
    first = [batch["label"].tolist() for batch in loader]
    second = [batch["label"].tolist() for batch in loader]
    assert first == second == [[0, 2], [1, 3], [4], [5]]


def test_batches_arrive_as_paddle_tensors_that_own_their_memory():
    loader = workers.ProcessBatches(Numbered(8), batch_size=4, num_workers=2, convert=paddle.to_tensor)
    got = list(loader)
    # the slots were written again after the first batches were taken: the tensors must be copies
    assert [batch["label"].numpy().tolist() for batch in got] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert got[0]["frames"].dtype == paddle.uint8 and got[0]["frames"].shape == [4, 2, 3]
    assert got[1]["id"] == ["video-1", "video-3", "video-5", "video-7"]


def test_a_batch_larger_than_the_last_remakes_the_slot():
    sizes = [1, 1, 50, 50, 3, 200_000]  # samples of each batch (batch_size 1): the slot grows twice
    got = batches(Numbered(len(sizes), lambda i: {"x": np.full(sizes[i], i, np.float64)}), 1, 1)
    assert [len(batch["x"][0]) for batch in got] == sizes
    assert all((batch["x"] == i).all() for i, batch in enumerate(got))


def test_a_header_too_long_for_one_message_travels_in_a_block():
    long_id = "v" * 100_000
    got = batches(Numbered(4, lambda i: {"id": f"{long_id}{i}", "x": np.int64(i)}), 2, 1)
    assert [batch["id"] for batch in got] == [[f"{long_id}0", f"{long_id}1"], [f"{long_id}2", f"{long_id}3"]]


def test_samples_that_differ_in_shape_name_the_field():
    dataset = Numbered(4, lambda i: {"clip": {"frames": np.zeros((i + 1, 2), np.uint8)}})
    with pytest.raises(DataError, match=r"data worker 0: ValueError: sample\['clip'\]\['frames'\]: "
                                        r"the samples of one batch differ in shape: \(1, 2\) and \(2, 2\)"):
        batches(dataset, 2, 1, error=DataError)
    assert no_workers_left()


def test_samples_that_differ_in_keys_or_hold_other_things_are_refused():
    keys = Numbered(2, lambda i: {"a": 1} if i == 0 else {"b": 1})
    with pytest.raises(DataError, match=r"differ in their keys: \['a'\] and \['b'\]"):
        batches(keys, 2, 1, error=DataError)
    other = Numbered(2, lambda i: {"a": object()})
    with pytest.raises(DataError, match=r"sample\['a'\]: a sample holds object"):
        batches(other, 2, 1, error=DataError)


def test_an_exception_in_a_worker_ends_the_iteration_with_its_reason():
    def make(i):
        if i == 5:
            raise OSError("shard-3.parquet: truncated")
        return Numbered.sample(i)

    loader = workers.ProcessBatches(Numbered(12, make), batch_size=2, num_workers=2, convert=np.array, error=DataError)
    seen = []
    with pytest.raises(DataError, match="data worker 1: OSError: shard-3.parquet: truncated"):
        for batch in loader:
            seen.append(batch["label"].tolist())
    assert seen[:2] == [[0, 2], [1, 3]]  # what came before the failure was delivered
    assert no_workers_left()


def test_a_failure_the_dataset_reports_is_raised_as_it_says():
    loader = workers.ProcessBatches(Numbered(6), batch_size=2, num_workers=2, convert=np.array, error=DataError,
                                    failure=lambda samples: "cache/x: record 3: bad" if samples[0]["label"] == 3 else None)
    with pytest.raises(DataError, match="^cache/x: record 3: bad$"):
        list(loader)
    assert no_workers_left()


def test_a_worker_killed_mid_epoch_is_named_with_its_signal():
    def make(i):
        if i == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return Numbered.sample(i)

    loader = workers.ProcessBatches(Numbered(10, make), batch_size=1, num_workers=2, convert=np.array, error=DataError)
    with pytest.raises(DataError, match=r"data worker 0 ended without finishing its share of the epoch "
                                        r"\(killed by SIGKILL; out of memory\?\)"):
        list(loader)
    assert no_workers_left()


def test_leaving_an_epoch_early_stops_the_workers():
    iterator = iter(workers.ProcessBatches(Numbered(1000), batch_size=2, num_workers=2, convert=np.array))
    next(iterator)
    assert len(multiprocessing.active_children()) == 2
    iterator.close()
    assert no_workers_left()


def test_a_stop_request_while_waiting_for_a_batch_raises_keyboard_interrupt():
    def slow(i):
        time.sleep(30)
        return Numbered.sample(i)

    iterator = iter(workers.ProcessBatches(Numbered(4, slow), batch_size=1, num_workers=2, convert=np.array))
    stop.request()
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            next(iterator)
        assert time.monotonic() - started < 5
    finally:
        stop.clear()
    assert no_workers_left()


def test_workers_ignore_ctrl_c():
    def make(i):
        if i == 0:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C reaches the whole process group
        return Numbered.sample(i)

    got = batches(Numbered(4, make), 2, 2)
    assert [batch["label"].tolist() for batch in got] == [[0, 2], [1, 3]]


def test_make_loader_uses_the_workers_and_keeps_the_step_count(tmp_path):
    from videotk.trainers.loader import Loader

    class Counted(Numbered):
        def reader_samples(self, num_workers):
            return [len(range(worker, self.count, num_workers)) for worker in range(num_workers)]

    loader = make_loader(Counted(9), batch_size=2, num_workers=2)
    assert isinstance(loader, Loader) and isinstance(loader.dataloader, workers.ProcessBatches)
    got = list(loader)
    assert len(got) == loader.steps == 5 and loader.samples == 9
    assert sorted(i for batch in got for i in batch["label"].numpy().tolist()) == list(range(9))
    paddle_loader = make_loader(Counted(9), batch_size=2, num_workers=2, paddle_workers=True)
    assert isinstance(paddle_loader.dataloader, paddle.io.DataLoader)


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError, match="at least one worker"):
        workers.ProcessBatches(Numbered(1), batch_size=1, num_workers=0, convert=np.array)


def test_a_collation_of_its_own_runs_in_the_worker_and_its_batch_arrives_whole():
    from videotk.trainers.tasks.captioning import pad_collate

    def make(i):
        return {"features": np.full((i + 1, 2), i, np.float32), "length": np.int64(i + 1)}

    got = batches(Numbered(5, make), 2, 2, collate=lambda samples: {**pad_collate(samples), "n": [len(samples)]})
    want = [pad_collate([make(i) for i in rows]) for rows in ([0, 2], [1, 3], [4])]
    assert len(got) == 3
    for batch, expect in zip(got, want):
        assert batch["n"] == [len(expect["length"])]
        for key in ("features", "length"):
            assert batch[key].dtype == expect[key].dtype
            np.testing.assert_array_equal(batch[key], expect[key])
    assert got[1]["features"].shape == (2, 4, 2)  # padded to the longest of its own samples


def test_a_padded_loader_gives_the_same_batches_with_and_without_workers():
    from videotk.trainers.tasks.captioning import padded_loader

    class Lengths(Numbered, paddle.io.IterableDataset):
        def __init__(self):
            super().__init__(7, lambda i: {"feat": np.full((i % 3 + 1, 4), i, np.float32), "index": np.int64(i)})

        def reader_samples(self, num_workers):
            return [len(range(worker, self.count, num_workers)) for worker in range(num_workers)]

    forked = list(padded_loader(Lengths(), batch_size=2, num_workers=2))
    alone = list(padded_loader(Lengths(), batch_size=2, num_workers=0))
    assert [b["index"].numpy().tolist() for b in forked] == [[0, 2], [1, 3], [4, 6], [5]]
    assert sorted(i for b in alone for i in b["index"].numpy().tolist()) == list(range(7))
    for batch in forked + alone:
        assert isinstance(batch["feat"], paddle.Tensor)
        rows = batch["index"].numpy().tolist()
        feat = batch["feat"].numpy()
        assert feat.shape == (len(rows), max(i % 3 + 1 for i in rows), 4)  # padded to its longest sample
        for row, i in enumerate(rows):
            np.testing.assert_array_equal(feat[row, : i % 3 + 1], i)
            assert not feat[row, i % 3 + 1:].any()
