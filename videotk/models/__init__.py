"""Video models (``paddle.nn.Layer``), one module per family, built by name with ``create_model``.

Importing a family's module registers its models; every family is imported here.
"""

from . import attention_cluster, attention_lstm, nextvlad
from .registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]
