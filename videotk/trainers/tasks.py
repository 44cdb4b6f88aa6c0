"""Tasks: what ties a dataset kind to its models — loaders, model inputs, loss, metrics, scores.

The training loop is the same for every model; a task supplies the parts that depend on the data.
``config["data"]["task"]`` names the task; the other ``data`` keys are the dataset's arguments.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

from .config import ConfigError


class YouTube8MTask:
    """Multi-label video classification on YouTube-8M frame features (Attention Cluster, Attention
    LSTM, NeXtVLAD): inputs ``rgb [N, T, 1024]``, ``audio [N, T, 128]``, ``mask [N, T]``; sigmoid
    cross-entropy summed over classes; Hit@1, PERR and GAP."""

    name = "youtube8m"
    cache_kinds = ("youtube8m-frame",)
    views = 1

    def __init__(self, config: dict):
        self.num_classes = config["model"]["num_classes"]
        self.top_k = config["eval"]["top_k"]
        self.seed = config["train"]["seed"]
        self.dataset_kwargs = {k: v for k, v in config["data"].items() if k != "task"}
        self.frames = self.dataset_kwargs.get("num_samples") or self.dataset_kwargs.get("max_frames", 300)

    def loader(self, cache: str, *, batch_size: int, num_workers: int, train: bool, epoch: int = 0):
        from .youtube8m_data import youtube8m_loader

        try:
            loader = youtube8m_loader(cache, batch_size=batch_size, num_workers=num_workers, train=train,
                                      num_classes=self.num_classes, seed=self.seed, **self.dataset_kwargs)
        except TypeError as exc:
            raise ConfigError(f"config section data: {exc}") from exc
        loader.dataset.set_epoch(epoch)
        return loader

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [batch["rgb"], batch["audio"], batch["mask"]]

    def loss(self, logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        per_class = F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
        return per_class.sum(axis=1).mean()

    def scores(self, logits: paddle.Tensor) -> np.ndarray:
        """Per-class probabilities ``[N, num_classes]``."""
        return F.sigmoid(logits).numpy()

    def evaluator(self):
        from ..evaluators.youtube8m import YouTube8MEvaluator

        return YouTube8MEvaluator(top_k=self.top_k)

    def update(self, evaluator, logits: paddle.Tensor, batch: dict, loss: float) -> None:
        evaluator.update(self.scores(logits), batch["labels"].numpy(), loss=loss)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        return [
            paddle.static.InputSpec([None, self.frames, 1024], "float32", "rgb"),
            paddle.static.InputSpec([None, self.frames, 128], "float32", "audio"),
            paddle.static.InputSpec([None, self.frames], "float32", "mask"),
        ]


class KineticsTask:
    """Single-label classification of Kinetics clips (TSN, TSM, StNet, Non-local): softmax
    cross-entropy; top-1/top-5 per clip and per video (scores averaged over the test views).

    ``data`` keys are :class:`~videotk.trainers.kinetics_data.KineticsClips` arguments; ``data.test``
    overrides some of them for evaluation and prediction (the seed tests StNet on 25 segments and
    Non-local on 30 views of 256 pixels). Segment-mode batches ``[N, seg_num * seglen, 3, H, W]``
    become the model input ``[N, seg_num, seglen * 3, H, W]``; dense clips ``[N, 3, T, H, W]`` pass.
    """

    name = "kinetics"
    cache_kinds = ("kinetics",)

    def __init__(self, config: dict):
        self.num_classes = config["model"]["num_classes"]
        self.seed = config["train"]["seed"]
        data = {k: v for k, v in config["data"].items() if k not in ("task", "test")}
        self.train_kwargs = data
        self.test_kwargs = {**data, **(config["data"].get("test") or {})}
        self.segments = data.get("mode", "tsn") == "tsn"
        self.seglen = data.get("seglen", 1)
        self.views = self._sampler().num_views

    def _sampling(self) -> dict:
        """The test-time :class:`~videotk.trainers.kinetics_data.ClipSampler` arguments of ``data``."""
        from .kinetics_data import ClipSampler

        return {k: v for k, v in self.test_kwargs.items() if k in ClipSampler.__dataclass_fields__}

    def _sampler(self):
        from .kinetics_data import ClipSampler

        try:
            return ClipSampler(**self._sampling())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config section data: {exc}") from exc

    def views_of(self, record: dict) -> np.ndarray:
        """The test views ``[V, ...]`` of one decoded video (a dict shaped like a cache record)."""
        from .kinetics_data import views_from_record

        return views_from_record(record, **self._sampling())

    def loader(self, cache: str, *, batch_size: int, num_workers: int, train: bool, epoch: int = 0):
        from .kinetics_data import kinetics_loader

        kwargs = self.train_kwargs if train else self.test_kwargs
        try:
            loader = kinetics_loader(cache, batch_size=batch_size, num_workers=num_workers, train=train,
                                     seed=self.seed, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"config section data: {exc}") from exc
        loader.dataset.set_epoch(epoch)
        return loader

    def model_input(self, frames: paddle.Tensor) -> paddle.Tensor:
        if not self.segments:
            return frames
        n, f, c, h, w = frames.shape
        return frames.reshape([n, f // self.seglen, self.seglen * c, h, w])

    def inputs(self, batch: dict) -> list[paddle.Tensor]:
        return [self.model_input(batch["frames"])]

    def loss(self, logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        return F.cross_entropy(logits, batch["label"].reshape([-1, 1]))

    def scores(self, logits: paddle.Tensor) -> np.ndarray:
        """Class probabilities ``[N, num_classes]``."""
        return F.softmax(logits, axis=-1).numpy()

    def evaluator(self):
        from ..evaluators.kinetics import KineticsEvaluator

        return KineticsEvaluator(self.num_classes)

    def update(self, evaluator, logits: paddle.Tensor, batch: dict, loss: float) -> None:
        evaluator.update(self.scores(logits), batch["label"].numpy(), batch["index"].numpy(), loss=loss)

    def input_spec(self) -> list[paddle.static.InputSpec]:
        if self.segments:
            return [paddle.static.InputSpec([None, None, self.seglen * 3, None, None], "float32", "frames")]
        return [paddle.static.InputSpec([None, 3, None, None, None], "float32", "clips")]


TASKS = {task.name: task for task in (YouTube8MTask, KineticsTask)}


def make_task(config: dict):
    name = config["data"].get("task")
    if name not in TASKS:
        raise ConfigError(f"config key data.task: unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name](config)
