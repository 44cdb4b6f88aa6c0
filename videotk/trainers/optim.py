"""Optimizers and learning-rate schedules: the ``optimizer`` and ``lr_scheduler`` sections.

Each section has a ``name`` and the settings of that optimizer or schedule, one frozen dataclass
per name in :data:`OPTIMIZERS` and :data:`SCHEDULES`; a new one is one class and one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import paddle

from .settings import ConfigError, NonNegativeFloat, PositiveFloat, PositiveInt, parse_settings


@dataclass(frozen=True)
class OptimizerSettings:
    """Settings every optimizer has. ``weight_decay`` is L2 on weight matrices and kernels only
    (none on biases and normalisation scales); ``grad_clip`` clips the global gradient norm."""

    learning_rate: PositiveFloat
    weight_decay: NonNegativeFloat = 0.0
    grad_clip: PositiveFloat | None = None

    def build(self, model: paddle.nn.Layer, schedule: paddle.optimizer.lr.LRScheduler) -> paddle.optimizer.Optimizer:
        clip = paddle.nn.ClipGradByGlobalNorm(self.grad_clip) if self.grad_clip else None
        return self._optimizer(learning_rate=schedule, parameters=_parameter_groups(model, self.weight_decay),
                               grad_clip=clip)

    def _optimizer(self, **common) -> paddle.optimizer.Optimizer:
        raise NotImplementedError


@dataclass(frozen=True)
class AdamSettings(OptimizerSettings):
    beta1: PositiveFloat = 0.9
    beta2: PositiveFloat = 0.999
    epsilon: PositiveFloat = 1e-8

    def _optimizer(self, **common):
        return paddle.optimizer.Adam(beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon, **common)


@dataclass(frozen=True)
class RMSPropSettings(OptimizerSettings):
    rho: PositiveFloat = 0.95
    epsilon: PositiveFloat = 1e-6
    momentum: NonNegativeFloat = 0.0
    centered: bool = False

    def _optimizer(self, **common):
        return paddle.optimizer.RMSProp(rho=self.rho, epsilon=self.epsilon, momentum=self.momentum,
                                        centered=self.centered, **common)


@dataclass(frozen=True)
class MomentumSettings(OptimizerSettings):
    momentum: NonNegativeFloat = 0.9
    nesterov: bool = False

    def _optimizer(self, **common):
        return paddle.optimizer.Momentum(momentum=self.momentum, use_nesterov=self.nesterov, **common)


OPTIMIZERS: dict[str, type[OptimizerSettings]] = {
    "adam": AdamSettings, "rmsprop": RMSPropSettings, "momentum": MomentumSettings,
}


class Constant(paddle.optimizer.lr.LRScheduler):
    """The base learning rate, always."""

    def get_lr(self) -> float:
        return self.base_lr


@dataclass(frozen=True)
class ScheduleSettings:
    """A learning-rate schedule; ``per_batch`` schedules step after every batch, others after every epoch."""

    per_batch: ClassVar[bool] = False

    def build(self, base_lr: float, global_batch: int) -> paddle.optimizer.lr.LRScheduler:
        raise NotImplementedError


@dataclass(frozen=True)
class ConstantSchedule(ScheduleSettings):
    """The base learning rate throughout."""

    def build(self, base_lr, global_batch):
        return Constant(base_lr)


@dataclass(frozen=True)
class MultiStepSchedule(ScheduleSettings):
    """x ``gamma`` at each epoch of ``milestones``."""

    milestones: tuple[PositiveInt, ...] = ()
    gamma: PositiveFloat = 0.1

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones {list(self.milestones)} must increase")

    def build(self, base_lr, global_batch):
        return paddle.optimizer.lr.MultiStepDecay(base_lr, milestones=list(self.milestones), gamma=self.gamma)


@dataclass(frozen=True)
class StepExamplesSchedule(ScheduleSettings):
    """x ``gamma`` every ``every_examples`` training examples (over all ranks)."""

    every_examples: PositiveInt = 2_000_000
    gamma: PositiveFloat = 0.8
    per_batch: ClassVar[bool] = True

    def build(self, base_lr, global_batch):
        step_size = max(1, round(self.every_examples / global_batch))
        return paddle.optimizer.lr.StepDecay(base_lr, step_size=step_size, gamma=self.gamma)


class Noam(paddle.optimizer.lr.LRScheduler):
    """``base_lr * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`` with ``step`` counted
    from 1 at the first batch (Vaswani et al., arXiv 1706.03762, section 5.3).

    Paddle's ``NoamDecay`` counts from 0 and so gives the first batch a learning rate of 0; the
    fluid ``noam_decay`` the seeds trained with counted from 1, as this one does.
    """

    def __init__(self, base_lr: float, d_model: int, warmup_steps: int):
        self.d_model, self.warmup_steps = d_model, warmup_steps
        super().__init__(base_lr)

    def get_lr(self) -> float:
        step = self.last_epoch + 1
        return self.base_lr * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup_steps ** -1.5)


@dataclass(frozen=True)
class NoamSchedule(ScheduleSettings):
    """Linear warm-up over ``warmup_steps`` batches, then decay as ``1 / sqrt(step)``; peak
    ``base_lr / sqrt(d_model * warmup_steps)`` at ``warmup_steps``. The defaults are ETS's (its
    decoder size 512, warm-up 1000), whose optimizer ``learning_rate`` is 1.0 (a multiplier here)."""

    d_model: PositiveInt = 512
    warmup_steps: PositiveInt = 1000
    per_batch: ClassVar[bool] = True

    def build(self, base_lr, global_batch):
        return Noam(base_lr, self.d_model, self.warmup_steps)


SCHEDULES: dict[str, type[ScheduleSettings]] = {
    "constant": ConstantSchedule, "multistep": MultiStepSchedule, "step_examples": StepExamplesSchedule,
    "noam": NoamSchedule,
}


def parse_optimizer(section: dict) -> OptimizerSettings:
    """The ``optimizer`` section as the settings of its ``name``."""
    return _parse_named(section, OPTIMIZERS, "optimizer")


def parse_schedule(section: dict) -> ScheduleSettings:
    """The ``lr_scheduler`` section as the settings of its ``name``."""
    return _parse_named(section, SCHEDULES, "lr_scheduler")


def optimizer_name(settings: OptimizerSettings) -> str:
    return _name_of(settings, OPTIMIZERS)


def schedule_name(settings: ScheduleSettings) -> str:
    return _name_of(settings, SCHEDULES)


def _parse_named(section: dict, table: dict, where: str):
    section = dict(section)
    name = section.pop("name", None)
    if name not in table:
        raise ConfigError(f"config key {where}.name: {name!r} is not one of {', '.join(table)}")
    return parse_settings(table[name], section, where)


def _name_of(settings, table: dict) -> str:
    return next(name for name, cls in table.items() if type(settings) is cls)


def _parameter_groups(model: paddle.nn.Layer, weight_decay: float) -> list[dict]:
    """L2 on weight matrices and kernels; none on biases and normalisation scales (1-D parameters)."""
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    decayed = [p for p in trainable if len(p.shape) > 1]
    plain = [p for p in trainable if len(p.shape) <= 1]
    return [group for group in ({"params": decayed, "weight_decay": weight_decay},
                                {"params": plain, "weight_decay": 0.0}) if group["params"]]
