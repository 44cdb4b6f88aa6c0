"""Video models (``paddle.nn.Layer``), one module per family, built by name with ``create_model``.

Importing a family's module registers its models; every family is imported here.
"""

from . import (  # noqa: F401  each registers its models
    attention_cluster, attention_lstm, bmn, bsn, ctcn, ets, nextvlad, non_local, stnet, tall, tsm, tsn,
)
from .pretrained import load_pretrained
from .registry import create_model, list_models, model_class, model_info, register_model

__all__ = ["count_parameters", "create_model", "list_models", "load_pretrained", "model_class", "model_info",
           "register_model"]


def count_parameters(model) -> int:
    """Trainable parameters of ``model`` (BN running statistics, which Paddle keeps as frozen parameters,
    excluded)."""
    return sum(int(p.numel()) for p in model.parameters() if not p.stop_gradient)
