"""Reading plans: every record once per epoch over ranks x workers, deterministic orders."""

from collections import Counter

import numpy as np
import pytest

from videotk.formats import open_cache
from videotk.trainers.sharding import (
    ReaderSlot,
    Span,
    buffered_shuffle,
    epoch_order,
    read_spans,
    reading_plan,
)

LAYOUTS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 2)]
MANY_SHARDS = [5, 3, 7, 0, 4, 6, 2, 8, 1]  # 9 shards: at least as many as 6 readers
FEW_SHARDS = [10, 3]  # 2 shards: fewer than most layouts' readers


def slots(world_size: int, num_workers: int) -> list[ReaderSlot]:
    return [ReaderSlot(r, world_size, w, num_workers) for r in range(world_size) for w in range(num_workers)]


def plans(rows, world_size, num_workers, **options) -> list[list[Span]]:
    return [reading_plan(rows, slot, **options) for slot in slots(world_size, num_workers)]


def records(spans: list[Span]) -> list[tuple[int, int]]:
    return [(span.shard, row) for span in spans for row in range(span.start, span.stop)]


def test_epoch_order_is_a_seeded_permutation():
    assert epoch_order(6, seed=3, epoch=0, shuffle=False) == [0, 1, 2, 3, 4, 5]
    first = epoch_order(50, seed=3, epoch=0, shuffle=True)
    assert sorted(first) == list(range(50))
    assert first == epoch_order(50, seed=3, epoch=0, shuffle=True)
    assert first != epoch_order(50, seed=3, epoch=1, shuffle=True)
    assert first != epoch_order(50, seed=4, epoch=0, shuffle=True)


@pytest.mark.parametrize("rows", [MANY_SHARDS, FEW_SHARDS], ids=["many-shards", "few-shards"])
@pytest.mark.parametrize("world_size, num_workers", LAYOUTS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_record_read_exactly_once(rows, world_size, num_workers, shuffle):
    for epoch in range(3):
        shares = plans(rows, world_size, num_workers, seed=7, epoch=epoch, shuffle=shuffle)
        read = Counter(record for share in shares for record in records(share))
        assert sorted(read) == [(shard, row) for shard, n in enumerate(rows) for row in range(n)]
        assert set(read.values()) == {1}


@pytest.mark.parametrize("world_size, num_workers", LAYOUTS)
def test_whole_shards_when_there_are_enough(world_size, num_workers):
    shares = plans(MANY_SHARDS, world_size, num_workers, seed=1, epoch=2, shuffle=True)
    for share in shares:
        assert share, "a reader got no shard"
        assert all(span.start == 0 and span.stop == MANY_SHARDS[span.shard] for span in share)
    loads = [sum(map(len, share)) for share in shares]
    assert max(loads) - min(loads) <= max(MANY_SHARDS)


@pytest.mark.parametrize(
    "rows, world_size, num_workers", [([13], 1, 2), ([13], 2, 1), (FEW_SHARDS, 2, 2), (FEW_SHARDS, 3, 2)]
)
def test_no_reader_idles_with_few_shards(rows, world_size, num_workers):
    shares = plans(rows, world_size, num_workers, seed=1, epoch=0, shuffle=True)
    loads = [sum(map(len, share)) for share in shares]
    assert min(loads) >= 1 and max(loads) - min(loads) <= 1
    for share in shares:  # each share is read in row order, shard by shard
        assert all(span.start < span.stop for span in share)
        assert len({span.shard for span in share}) == len(share)


@pytest.mark.parametrize("rows", [MANY_SHARDS, FEW_SHARDS], ids=["many-shards", "few-shards"])
@pytest.mark.parametrize("world_size, num_workers", LAYOUTS)
def test_even_gives_every_reader_the_same_count(rows, world_size, num_workers):
    readers = world_size * num_workers
    left_out = set()
    for epoch in range(4):
        shares = plans(rows, world_size, num_workers, seed=5, epoch=epoch, shuffle=True, even=True)
        assert {sum(map(len, share)) for share in shares} == {sum(rows) // readers}
        read = Counter(record for share in shares for record in records(share))
        assert set(read.values()) == {1}
        every = {(shard, row) for shard, n in enumerate(rows) for row in range(n)}
        assert len(every - set(read)) == sum(rows) % readers
        left_out |= every - set(read)
    if sum(rows) % readers:
        assert len(left_out) > sum(rows) % readers, "the same records are left out every epoch"


def test_reader_slot_index_is_rank_major():
    assert [slot.index for slot in slots(3, 2)] == list(range(6))
    assert ReaderSlot(2, 3, 1, 2).count == 6
    with pytest.raises(ValueError, match="rank 3 of 3"):
        ReaderSlot(3, 3, 0, 1)


def test_buffered_shuffle_is_a_deterministic_permutation():
    items = list(range(100))
    first = list(buffered_shuffle(items, 16, np.random.default_rng(0)))
    assert sorted(first) == items and first != items
    assert first == list(buffered_shuffle(items, 16, np.random.default_rng(0)))
    assert first != list(buffered_shuffle(items, 16, np.random.default_rng(1)))
    assert sorted(buffered_shuffle(items, 1000, np.random.default_rng(0))) == items
    assert list(buffered_shuffle(items, 1, np.random.default_rng(0))) == items


def test_buffered_shuffle_only_looks_size_items_ahead():
    order = list(buffered_shuffle(range(1000), 10, np.random.default_rng(2)))
    assert all(item <= position + 10 for position, item in enumerate(order))


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_read_spans_gives_global_indices(yt8m_frame_src, tmp_path, fmt):
    from videotk.pipelines.youtube8m import convert_youtube8m

    convert_youtube8m(yt8m_frame_src, tmp_path / "cache", fmt=fmt, workers=1)
    cache = open_cache(tmp_path / "cache")
    last = len(cache.shards) - 1
    spans = [Span(last, 1, 3), Span(0, 0, 2)]
    got = list(read_spans(cache, spans))
    first_of_last = len(cache) - cache.shards[last]["rows"]
    assert [index for index, _ in got] == [first_of_last + 1, first_of_last + 2, 0, 1]
    for index, record in got:
        assert record["id"] == cache[index]["id"] and record["rgb"] == cache[index]["rgb"]


def test_evaluation_reads_the_whole_cache_in_every_rank(yt8m_frame_src, tmp_path, monkeypatch):
    """Training splits the records across ranks; evaluation (train=False) gives each rank all of
    them, so the metrics a rank computes are those of the whole validation cache."""
    import paddle

    from videotk.pipelines.youtube8m import convert_youtube8m
    from videotk.trainers.tasks.youtube8m import YouTube8MFrames

    convert_youtube8m(yt8m_frame_src, tmp_path / "cache", workers=1)
    cache = open_cache(tmp_path / "cache")
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda *a: 2)   # as rank 1 of 2 sees it
    monkeypatch.setattr(paddle.distributed, "get_rank", lambda *a: 1)
    training = YouTube8MFrames(cache, train=True)
    evaluating = YouTube8MFrames(cache, train=False)
    assert sum(training.reader_samples(2)) < len(cache)
    assert sum(evaluating.reader_samples(2)) == len(cache)
    assert sorted(int(s["index"]) for s in evaluating) == list(range(len(cache)))
