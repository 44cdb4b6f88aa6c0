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


TASKS = {task.name: task for task in (YouTube8MTask,)}


def make_task(config: dict):
    name = config["data"].get("task")
    if name not in TASKS:
        raise ConfigError(f"config key data.task: unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name](config)
