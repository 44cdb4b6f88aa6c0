"""Temporal Segment Networks (Wang et al., arXiv 1608.00859) on Kinetics-400 RGB frames.

A video is split into ``seg_num`` segments and one frame is sampled from each. A 2D ResNet scores every
frame on its own (dropout, then a linear classifier) and the segment consensus is the average of the
per-frame class scores. As the classifier is linear this equals classifying the averaged features, which
is how the 2019 PaddleVideo TSN computed it. That model used no dropout (``dropout=0.0``); the paper's
BN-Inception used 0.8. The classifier starts uniform in ``+-1/sqrt(features)``.
"""

from __future__ import annotations

import math

import paddle
from paddle import nn

from .registry import register_model
from .resnet import ResNet, TemporalFactory


def uniform_linear(in_dim: int, out_dim: int, bound_dim: int | None = None,
                   bias_attr: paddle.ParamAttr | None = None) -> nn.Linear:
    """``nn.Linear`` with weights uniform in ``+-1/sqrt(bound_dim)`` (default ``in_dim``)."""
    bound = 1.0 / math.sqrt(bound_dim or in_dim)
    weight_attr = paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    return nn.Linear(in_dim, out_dim, weight_attr=weight_attr, bias_attr=bias_attr)


def fold_segments(frames: paddle.Tensor) -> paddle.Tensor:
    """``[N, T, C, H, W]`` -> ``[N * T, C, H, W]`` (segments of one video stay adjacent)."""
    if frames.ndim != 5:
        raise ValueError(f"expected frames [N, seg_num, C, H, W], got shape {list(frames.shape)}")
    return frames.reshape([-1, *frames.shape[2:]])


class TSN(nn.Layer):
    """TSN: frames ``[N, T, 3, H, W]`` -> logits ``[N, num_classes]``, any number of segments ``T``.

    ``seg_num`` is the number of segments it is trained on (the seed tests on 7); ``temporal`` is passed
    to the ResNet (a layer factory run on each residual branch's input); ``fc_bias_attr`` is the
    classifier bias's ``ParamAttr``.
    """

    def __init__(self, *, num_classes: int = 400, depth: int = 50, seg_num: int = 3, dropout: float = 0.0,
                 base_width: int = 64, temporal: TemporalFactory | None = None,
                 fc_bias_attr: paddle.ParamAttr | None = None):
        super().__init__()
        self.seg_num = seg_num
        self.backbone = ResNet(depth, num_classes=0, base_width=base_width, temporal=temporal)
        self.dropout = nn.Dropout(dropout)
        self.fc = uniform_linear(self.backbone.num_features, num_classes, bias_attr=fc_bias_attr)

    def forward(self, frames: paddle.Tensor) -> paddle.Tensor:
        """``frames`` ``[N, T, 3, H, W]`` -> segment-averaged logits ``[N, num_classes]``."""
        n, t = frames.shape[0], frames.shape[1]
        scores = self.fc(self.dropout(self.backbone(fold_segments(frames))))
        return scores.reshape([n, t, -1]).mean(axis=1)


def _create_tsn(**kwargs) -> TSN:
    return TSN(**kwargs)


@register_model(
    "tsn",
    task="video classification (Kinetics-400 frames)",
    inputs="frames [N, seg_num, 3, H, W]: one RGB frame per segment, ImageNet-normalised (seed: 3 x 224x224)",
    config="tsn.yaml",
)
def tsn(**kwargs) -> TSN:
    """TSN: ResNet-50 per segment, average consensus over 3 segments, 400 classes."""
    return _create_tsn(**kwargs)
