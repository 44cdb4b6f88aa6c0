"""Task families: what ties a kind of cache to its models, loss, metrics and outputs.

The protocol is :class:`~videotk.trainers.tasks.base.Task`; each family is one module here whose
task class is registered by :func:`~videotk.trainers.tasks.base.register_task`. Importing this
package imports every family.
"""

from . import bsn, captioning, detection, grounding, kinetics, proposals, youtube8m  # noqa: F401  each registers its task
from .base import TASKS, CacheKindError, Step, Task, register_task, task_class

__all__ = ["TASKS", "CacheKindError", "Step", "Task", "make_task", "register_task", "task_class"]


def make_task(config) -> Task:
    """The task of a resolved config (``config.task``)."""
    return task_class(config.task)(config)
