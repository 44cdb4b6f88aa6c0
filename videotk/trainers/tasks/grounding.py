"""Temporal sentence grounding on TACoS with TALL (CTRL).

The cache is a ``tacos`` cache (``vtk convert tacos``), one subset per cache: one record per movie
with ``id``, ``windows`` int32 ``[W, 2]`` (start, end frames of its sliding windows),
``window_features`` float32 ``[W, D]``, ``sentence_spans`` int32 ``[S, 2]`` (each sentence's
ground-truth clip, frames), ``sentence_vectors`` float32 ``[S, E]`` and ``sentences`` (text).

A window's visual input is ``[left context, window, right context]`` (``3 x D``): the features of
the windows ``(start - 128, start)`` and ``(end, end + 128)`` of the movie, or the window's own when
there is none (the seed's rule with one context window).

Training samples are (window, sentence) pairs, made when reading, as the seed makes them: every
window of the sentence's movie with IoU > ``data.pair_iou`` (0.5) and non-IoL < ``data.pair_niol``
(0.15, the part of the window outside the clip over its length) with the sentence's clip. One
sample is a dict of numpy arrays:

============  =====================  ===========================================================
key           dtype, shape           content
============  =====================  ===========================================================
``visual``    float32 ``[3 * D]``    the window with its context
``sentence``  float32 ``[E]``        the sentence vector
``offsets``   float32 ``[2]``        clip start - window start, clip end - window end (frames)
``index``     int64 ``[]``           the record's index in the cache
============  =====================  ===========================================================

The alignment loss treats the other sentences of a batch as negatives, so a batch holds pairs of
distinct clips (the original's rule; the Paddle seed walked a shuffled list and could pair a
sentence with its own clip as a negative): the pairs of ``data.pool`` movies at a time are dealt
into batches one clip per batch, the clips with the most pairs left first, ties at random. Every
pair is read once per epoch; only the last batches of an epoch may repeat a clip, when fewer
clips than a batch are left.

Evaluation and prediction read one sample per movie: its windows of the lengths
``eval.window_lengths`` (the seed's test windows are 128 and 256 frames; empty: all), each with
its context, and all its sentences; every sentence is scored against every window in one call
(``[S, W, 3]``), the windows moved by the regressed offsets, and R@1/5/10 at IoU 0.1/0.3/0.5/0.7
after temporal NMS (:mod:`videotk.evaluators.grounding`). ``vtk predict tall`` writes the best
``eval.moments`` (5) moments per sentence after NMS at ``eval.nms``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import paddle

from ...formats import Cache, CacheError
from ..loader import Loader, SampleFailure
from ..sections import EvalSettings
from ..settings import NonNegativeFloat, PositiveFloat, PositiveInt
from ..sharding import current_reader
from .base import Task, as_numpy, register_task
from .captioning import CountedRecords, padded_loader

KIND = "tacos"
HINT = "convert TACoS window features and sentences with `vtk convert tacos`"
CONTEXT = 128
RESULT_VERSION = "1.0"


# -- pairs and context windows -------------------------------------------------------------------


def training_pairs(windows: np.ndarray, spans: np.ndarray, *, iou: float = 0.5, niol: float = 0.15) -> np.ndarray:
    """``[P, 2]`` (sentence, window) index pairs: windows ``[W, 2]`` whose IoU with the sentence's clip
    (``spans`` ``[S, 2]``) is above ``iou`` and whose non-IoL is below ``niol``."""
    w = np.asarray(windows, np.float64).reshape(-1, 2)[None]
    s = np.asarray(spans, np.float64).reshape(-1, 2)[:, None]
    inter = np.minimum(w[..., 1], s[..., 1]) - np.maximum(w[..., 0], s[..., 0])
    union = np.maximum(w[..., 1], s[..., 1]) - np.minimum(w[..., 0], s[..., 0])
    length = w[..., 1] - w[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        good = (inter / union > iou) & ((length - inter) / length < niol)
    return np.argwhere(good).astype(np.int64)


def context_rows(windows: np.ndarray, context: int = CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``[W]`` of each window's left ``(start - context, start)`` and right ``(end, end +
    context)`` context windows among ``windows`` ``[W, 2]``, the window's own row where there is none."""
    rows = {(int(s), int(e)): i for i, (s, e) in enumerate(np.asarray(windows).reshape(-1, 2))}
    left = [rows.get((int(s) - context, int(s)), i) for i, (s, e) in enumerate(windows)]
    right = [rows.get((int(e), int(e) + context), i) for i, (s, e) in enumerate(windows)]
    return np.array(left, np.int64), np.array(right, np.int64)


def visual_inputs(features: np.ndarray, windows: np.ndarray, rows: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """float32 ``[len(rows), 3 * D]``: windows ``rows`` of ``features`` ``[W, D]`` with their contexts."""
    left, right = context_rows(windows, context)
    return np.concatenate([features[left[rows]], features[rows], features[right[rows]]], axis=1).astype(np.float32)


# -- datasets ------------------------------------------------------------------------------------


@dataclass
class Movie:
    """A movie read for training: what its pairs' samples are made of."""

    index: int
    features: np.ndarray
    windows: np.ndarray
    vectors: np.ndarray
    spans: np.ndarray
    left: np.ndarray
    right: np.ndarray
    pending: int

    def sample(self, sentence: int, window: int) -> dict:
        (s, e), (ws, we) = self.spans[sentence], self.windows[window]
        visual = np.concatenate([self.features[self.left[window]], self.features[window],
                                 self.features[self.right[window]]]).astype(np.float32)
        return {"visual": visual, "sentence": np.asarray(self.vectors[sentence], np.float32),
                "offsets": np.array([s - ws, e - we], np.float32), "index": np.array(self.index, np.int64)}


class PairSamples(CountedRecords):
    """TALL's training pairs (module docstring), dealt into batches of ``batch_size`` distinct clips."""

    def __init__(self, cache: Cache, *, pairs: list[np.ndarray], batch_size: int, pool: int, context: int, **kwargs):
        super().__init__(cache, counts=np.array([len(p) for p in pairs], np.int64), train=True, **kwargs)
        self.pairs, self.batch_size, self.pool, self.context = pairs, batch_size, pool, context

    def record_samples(self, index: int, record: dict, rng: np.random.Generator | None) -> Iterator:
        windows = np.asarray(record["windows"], np.int64).reshape(-1, 2)
        spans = np.asarray(record["sentence_spans"], np.int64).reshape(-1, 2)
        left, right = context_rows(windows, self.context)
        movie = Movie(index, np.asarray(record["window_features"], np.float32), windows,
                      np.asarray(record["sentence_vectors"], np.float32), spans, left, right, len(self.pairs[index]))
        for sentence, window in self.pairs[index]:
            yield movie, (index, *spans[sentence].tolist()), int(sentence), int(window)

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, self.epoch, current_reader(self.rank, self.world_size).index, 1])
        dealer = Dealer(self.batch_size, rng)
        for item in super().__iter__():
            if isinstance(item, SampleFailure):
                yield item
                return
            dealer.add(*item)
            while len(dealer.movies) >= self.pool and dealer.waiting >= self.batch_size:
                yield from dealer.deal()
        while dealer.waiting:
            yield from dealer.deal()


class Dealer:
    """Pairs waiting to be dealt, by clip, and the movies they come from."""

    def __init__(self, batch_size: int, rng: np.random.Generator):
        self.batch_size, self.rng = batch_size, rng
        self.clips: dict[tuple, list] = {}
        self.movies: set[int] = set()
        self.waiting = 0

    def add(self, movie: Movie, clip: tuple, sentence: int, window: int) -> None:
        self.clips.setdefault(clip, []).append((movie, sentence, window))
        self.movies.add(movie.index)
        self.waiting += 1

    def deal(self) -> Iterator[dict]:
        """One batch: a random pair of each of the ``batch_size`` clips with the most pairs waiting
        (repeating clips only when fewer are waiting), in random order."""
        chosen = []
        while len(chosen) < self.batch_size and self.clips:
            keys = list(self.clips)
            order = np.lexsort((self.rng.random(len(keys)), [-len(self.clips[k]) for k in keys]))
            for k in order[: self.batch_size - len(chosen)]:
                pairs = self.clips[keys[k]]
                chosen.append(pairs.pop(int(self.rng.integers(len(pairs)))))
                if not pairs:
                    del self.clips[keys[k]]
        self.waiting -= len(chosen)
        for movie, sentence, window in (chosen[i] for i in self.rng.permutation(len(chosen))):
            movie.pending -= 1
            if not movie.pending:
                self.movies.discard(movie.index)
            yield movie.sample(sentence, window)


class MovieSamples(CountedRecords):
    """One evaluation sample per movie: ``visual`` ``[W, 3 * D]`` of its test windows, ``windows``
    ``[W, 2]``, ``sentences`` ``[S, E]``, ``spans`` ``[S, 2]``, ``num_windows``, ``num_sentences``,
    ``index`` (a batch pads them to its largest movie)."""

    def __init__(self, cache: Cache, *, lengths: tuple[int, ...], context: int, **kwargs):
        super().__init__(cache, counts=np.ones(len(cache), np.int64), train=False, **kwargs)
        self.lengths, self.context = lengths, context

    def record_samples(self, index: int, record: dict, rng: np.random.Generator | None) -> Iterator[dict]:
        windows = np.asarray(record["windows"], np.int64).reshape(-1, 2)
        rows = np.flatnonzero(np.isin(windows[:, 1] - windows[:, 0], self.lengths) if self.lengths else
                              np.ones(len(windows), bool))
        features = np.asarray(record["window_features"], np.float32)
        vectors = np.asarray(record["sentence_vectors"], np.float32)
        yield {"visual": visual_inputs(features, windows, rows, self.context).reshape(len(rows), 3 * features.shape[1]),
               "windows": windows[rows].astype(np.float32), "sentences": vectors,
               "spans": np.asarray(record["sentence_spans"], np.float32).reshape(-1, 2),
               "num_windows": np.array(len(rows), np.int64), "num_sentences": np.array(len(vectors), np.int64),
               "index": np.array(index, np.int64)}


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundingData:
    """The ``data`` section: the pair rule (IoU above ``pair_iou``, non-IoL below ``pair_niol``), the
    context window length (frames), the movies whose pairs are dealt together (``pool``), the
    weight of the offset loss, and the records read ahead per reader (``shuffle_buffer``)."""

    pair_iou: NonNegativeFloat = 0.5
    pair_niol: NonNegativeFloat = 0.15
    context: PositiveInt = CONTEXT
    pool: PositiveInt = 16
    lambda_regression: NonNegativeFloat = 0.01
    shuffle_buffer: PositiveInt = 4


@dataclass(frozen=True)
class GroundingEval(EvalSettings):
    """The ``eval`` section: the test window lengths (frames; empty: every window), the metric's
    R@n and IoU thresholds, and for predictions the moments kept per sentence and the NMS
    overlap threshold. ``batch_size`` counts movies."""

    batch_size: PositiveInt = 1
    window_lengths: tuple[int, ...] = (128, 256)
    top_n: tuple[int, ...] = (1, 5, 10)
    iou_thresholds: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    moments: PositiveInt = 5
    nms: PositiveFloat = 0.45


# -- the task ------------------------------------------------------------------------------------


@register_task
class TALLTask(Task):
    """TALL: inputs ``visual [W, 3 * D]`` and ``sentence [S, E]``; output ``[S, W, 3]`` (alignment
    score, start and end offsets in frames)."""

    name = "grounding"
    cache_kinds = (KIND,)
    cache_hint = HINT
    Data = GroundingData
    Eval = GroundingEval

    def __init__(self, config) -> None:
        super().__init__(config)
        self.ids: list[str] = []
        self.texts: list[list[str]] = []

    @property
    def visual_dim(self) -> int:
        return self.config.model.get("visual_dim", 3 * 4096)

    @property
    def sentence_dim(self) -> int:
        return self.config.model.get("sentence_dim", 4800)

    def check_cache(self, cache: Cache, *, labels: bool) -> None:
        dims = {c.name: c.codec.dims[-1] for c in cache.columns if c.name in ("window_features", "sentence_vectors")}
        if dims["window_features"] is not None and 3 * dims["window_features"] != self.visual_dim:
            raise CacheError(f"{cache.path}: window features of dimension {dims['window_features']}, but "
                             f"model.visual_dim is {self.visual_dim} (3 windows: left context, window, right "
                             f"context); set -o model.visual_dim={3 * dims['window_features']}")
        if dims["sentence_vectors"] is not None and dims["sentence_vectors"] != self.sentence_dim:
            raise CacheError(f"{cache.path}: sentence vectors of dimension {dims['sentence_vectors']}, but "
                             f"model.sentence_dim is {self.sentence_dim}; set -o model.sentence_dim="
                             f"{dims['sentence_vectors']}")
        if labels and not any(len(s) for s in cache.column("sentence_spans")):
            raise CacheError(f"{cache.path}: no movie has a sentence to ground")

    def dataset(self, cache: Cache, *, train: bool, batch_size: int = 1):
        data = self.data
        if train:
            pairs = [training_pairs(w, s, iou=data.pair_iou, niol=data.pair_niol)
                     for w, s in zip(cache.column("windows"), cache.column("sentence_spans"))]
            return PairSamples(cache, pairs=pairs, batch_size=batch_size, pool=data.pool, context=data.context,
                               shuffle_buffer=data.shuffle_buffer, seed=self.config.train.seed)
        self.ids, self.texts = [str(i) for i in cache.column("id")], [list(t) for t in cache.column("sentences")]
        return MovieSamples(cache, lengths=self.config.eval.window_lengths, context=data.context, shuffle_buffer=1,
                            seed=self.config.train.seed)

    def loader(self, cache: Cache, *, batch_size: int, num_workers: int, train: bool, epoch: int = 0) -> Loader:
        dataset = self.dataset(cache, train=train, batch_size=batch_size)
        dataset.set_epoch(epoch)
        if train and not dataset.kept.sum():
            raise CacheError(f"{cache.path}: no window makes a training pair with a sentence (IoU > "
                             f"{self.data.pair_iou}, non-IoL < {self.data.pair_niol}); is this a test cache?")
        return padded_loader(dataset, batch_size=batch_size, num_workers=num_workers)

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["visual"], batch["sentence"]]

    def loss(self, outputs: paddle.Tensor, batch: dict) -> paddle.Tensor:
        from ...models.tall import tall_loss

        return tall_loss(outputs, batch["offsets"], lambda_regression=self.data.lambda_regression)

    def movie_outputs(self, model, batch: dict) -> list[np.ndarray]:
        """``[S, W, 3]`` per movie of an evaluation batch, each scored in one call."""
        out = []
        for row, (w, s) in enumerate(zip(as_numpy(batch["num_windows"]).tolist(),
                                         as_numpy(batch["num_sentences"]).tolist())):
            if not (w and s):
                out.append(np.zeros((s, w, 3), np.float32))
                continue
            out.append(as_numpy(model(batch["visual"][row, :w], batch["sentences"][row, :s])))
        return out

    def candidates(self, outputs: list[np.ndarray], batch: dict) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(record index, candidates [S, W, 3] (start, end, score), spans [S, 2])`` per movie."""
        from ...evaluators.grounding import window_candidates

        windows, spans = as_numpy(batch["windows"]), as_numpy(batch["spans"])
        for row, (found, index) in enumerate(zip(outputs, as_numpy(batch["index"]).tolist())):
            s, w = found.shape[:2]
            yield index, window_candidates(windows[row, :w], found), spans[row, :s]

    def evaluate_batch(self, model, batch: dict):
        """The movies' outputs; no loss (the alignment loss is defined on batches of training pairs)."""
        return self.movie_outputs(model, batch), None

    def predict_batch(self, model, batch: dict):
        return self.movie_outputs(model, batch)

    def evaluator(self):
        from ...evaluators.grounding import GroundingEvaluator

        return GroundingEvaluator(top_n=self.config.eval.top_n, iou_thresholds=self.config.eval.iou_thresholds)

    def update(self, evaluator, outputs, batch: dict, loss) -> None:
        for index, found, spans in self.candidates(outputs, batch):
            for sentence, span in enumerate(spans):
                evaluator.update((index, sentence), span, found[sentence])

    def predictions(self, results, cache: Cache, *, top_k: int, classes: list[str] | None) -> Iterator[dict]:
        from ...evaluators.grounding import temporal_nms

        keep = min(top_k, self.config.eval.moments)
        for outputs, batch in results:
            for index, found, _ in self.candidates(outputs, batch):
                moments = []
                for sentence, candidates in enumerate(found):
                    picks = temporal_nms(candidates[:, 0], candidates[:, 1], candidates[:, 2], self.config.eval.nms)
                    moments.append({"sentence": sentence, "text": self.texts[index][sentence], "moments": [
                        {"segment": [round(float(candidates[p, 0]), 1), round(float(candidates[p, 1]), 1)],
                         "score": round(float(candidates[p, 2]), 6)} for p in picks[:keep]]})
                yield {"id": self.ids[index], "results": moments}

    def write_predictions(self, records, file) -> int:
        """One JSON document: ``{"version", "units": "frames", "results": {movie: [{"sentence": k,
        "text", "moments": [{"segment": [start, end], "score"}, ...]}]}}``, moments best first."""
        results = {record["id"]: record["results"] for record in records}
        json.dump({"version": RESULT_VERSION, "units": "frames", "results": results}, file)
        file.write("\n")
        return len(results)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        return [paddle.static.InputSpec([None, self.visual_dim], "float32", "visual"),
                paddle.static.InputSpec([None, self.sentence_dim], "float32", "sentence")]
