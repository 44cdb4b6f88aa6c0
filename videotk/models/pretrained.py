"""Initialise a video model from a local ImageNet ResNet ``.pdparams`` (``paddle.vision.models.resnet`` layout).

Weights are matched by name, the model's ``backbone.`` prefix dropped (``backbone.layer1.0.conv1.weight``
takes ``layer1.0.conv1.weight``; a top-level ``fc`` takes ``fc``). Where the shapes differ, a 2D kernel
``[O, I, kh, kw]`` is adapted as the 2019 PaddleVideo models adapted it, else left out:

- more input channels ``k * I`` (StNet's first conv on ``seglen * 3`` channels): the kernel averaged over
  its ``I`` channels, divided by ``k`` and repeated ``k * I`` times;
- a temporal axis ``[O, I, kt, kh, kw]`` (C2D/I3D): the kernel repeated ``kt`` times, divided by ``kt``,
  so on a clip of identical frames it gives the 2D response (away from the clip's first and last frames);
- anything else (the classifier when the class count differs) is skipped.

Nothing is downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

logger = logging.getLogger(__name__)

BACKBONE_PREFIX = "backbone."


def read_pdparams(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.pdparams`` file (a state dict saved with ``paddle.save``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained weights at {path}; pass the path of a local .pdparams file "
                                f"(e.g. paddle.save(paddle.vision.models.resnet50().state_dict(), path))")
    state = paddle.load(str(path), return_numpy=True)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path} is not a state dict of arrays (a .pdparams saved from layer.state_dict())")
    return state


def source_name(name: str) -> str:
    """The name in the ImageNet checkpoint of the model's parameter ``name``."""
    return name[len(BACKBONE_PREFIX):] if name.startswith(BACKBONE_PREFIX) else name


def adapt(value: np.ndarray, shape: list[int]) -> np.ndarray | None:
    """``value`` reshaped for a parameter of ``shape`` by the rules above, or None when none applies."""
    shape = list(shape)
    if list(value.shape) == shape:
        return value
    if value.ndim != 4 or len(shape) not in (4, 5):
        return None
    if shape[0] != value.shape[0] or shape[-2:] != list(value.shape[2:]):
        return None
    in_channels = value.shape[1]
    if shape[1] != in_channels:
        if shape[1] % in_channels:
            return None
        copies = shape[1] // in_channels
        value = np.repeat(value.mean(axis=1, keepdims=True) / copies, shape[1], axis=1)
    if len(shape) == 5:
        value = np.repeat(value[:, :, None], shape[2], axis=2) / shape[2]
    return value


def load_pretrained(model: nn.Layer, path: str | Path) -> dict[str, list[str]]:
    """Copy the matching weights of the ``.pdparams`` at ``path`` into ``model`` (in place).

    Returns ``{"loaded": model names set, "skipped": checkpoint names not used, "missing": model names
    left as initialised}``; each list in state-dict order.
    """
    source = read_pdparams(path)
    targets = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "skipped": [], "missing": []}
    used = set()
    for name, tensor in targets.items():
        key = source_name(name)
        value = adapt(source[key], tensor.shape) if key in source else None
        if value is None:
            report["missing"].append(name)
            continue
        tensor.set_value(paddle.to_tensor(value.astype(np.float32)).astype(tensor.dtype))
        used.add(key)
        report["loaded"].append(name)
    report["skipped"] = [key for key in source if key not in used]
    _log_report(path, source, targets, report)
    return report


def _log_report(path: str | Path, source: dict[str, np.ndarray], targets: dict[str, paddle.Tensor],
                report: dict[str, list[str]]) -> None:
    by_source = {source_name(name): name for name in targets}
    for name in report["loaded"]:
        key = source_name(name)
        if list(source[key].shape) != list(targets[name].shape):
            logger.info("%s: adapted from %s to %s", name, list(source[key].shape), list(targets[name].shape))
    for key in report["skipped"]:
        if key in by_source:
            logger.info("%s: shape %s does not fit %s %s; skipped", key, list(source[key].shape), by_source[key],
                        list(targets[by_source[key]].shape))
    logger.info("%s: loaded %d tensors, skipped %d, %d left as initialised", path, len(report["loaded"]),
                len(report["skipped"]), len(report["missing"]))
