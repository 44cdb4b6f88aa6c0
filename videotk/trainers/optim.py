"""Optimizer and learning-rate schedule from a config's ``optimizer`` and ``lr_scheduler`` sections."""

from __future__ import annotations

import paddle

from .config import ConfigError


class Constant(paddle.optimizer.lr.LRScheduler):
    """The base learning rate, always."""

    def get_lr(self) -> float:
        return self.base_lr


def build_scheduler(section: dict, base_lr: float, global_batch: int) -> paddle.optimizer.lr.LRScheduler:
    """``constant``; ``multistep`` (x ``gamma`` at each epoch in ``milestones``, stepped per epoch);
    ``step_examples`` (x ``gamma`` every ``every_examples`` training examples, stepped per batch)."""
    name = section["name"]
    try:
        if name == "constant":
            return Constant(base_lr)
        if name == "multistep":
            return paddle.optimizer.lr.MultiStepDecay(base_lr, milestones=list(section["milestones"]),
                                                      gamma=section["gamma"])
        if name == "step_examples":
            step_size = max(1, round(section["every_examples"] / global_batch))
            return paddle.optimizer.lr.StepDecay(base_lr, step_size=step_size, gamma=section["gamma"])
    except KeyError as exc:
        raise ConfigError(f"config key lr_scheduler.{exc.args[0]} is needed by the {name!r} schedule") from exc
    raise ConfigError(f"config key lr_scheduler.name: unknown schedule {name!r}")


def steps_per_batch(section: dict) -> bool:
    """Whether the schedule advances after every batch (else after every epoch)."""
    return section["name"] == "step_examples"


def _parameter_groups(model: paddle.nn.Layer, weight_decay: float) -> list[dict]:
    """L2 on weight matrices and kernels; none on biases and normalisation scales (1-D parameters)."""
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    decayed = [p for p in trainable if len(p.shape) > 1]
    plain = [p for p in trainable if len(p.shape) <= 1]
    return [group for group in ({"params": decayed, "weight_decay": weight_decay},
                                {"params": plain, "weight_decay": 0.0}) if group["params"]]


def build_optimizer(section: dict, model: paddle.nn.Layer, scheduler) -> paddle.optimizer.Optimizer:
    """Adam, (centered) RMSProp or Momentum with per-parameter-group L2 and optional global-norm clipping."""
    clip = paddle.nn.ClipGradByGlobalNorm(section["grad_clip"]) if section["grad_clip"] else None
    common = {"learning_rate": scheduler, "parameters": _parameter_groups(model, section["weight_decay"]),
              "grad_clip": clip}
    name = section["name"]
    try:
        if name == "adam":
            return paddle.optimizer.Adam(beta1=section["beta1"], beta2=section["beta2"], epsilon=section["epsilon"],
                                         **common)
        if name == "rmsprop":
            return paddle.optimizer.RMSProp(rho=section["rho"], epsilon=section["epsilon"],
                                            momentum=section["momentum"], centered=section["centered"], **common)
        if name == "momentum":
            return paddle.optimizer.Momentum(momentum=section["momentum"], use_nesterov=section["nesterov"], **common)
    except KeyError as exc:
        raise ConfigError(f"config key optimizer.{exc.args[0]} is needed by the {name!r} optimizer") from exc
    raise ConfigError(f"config key optimizer.name: unknown optimizer {name!r}")
