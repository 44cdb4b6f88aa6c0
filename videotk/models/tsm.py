"""Temporal Shift Module (Lin et al., arXiv 1811.08383) on Kinetics-400 RGB frames.

TSN with a ResNet in which every residual branch starts with a temporal shift of its input ("residual
shift"; the shortcut keeps the unshifted input): of ``C`` channels, the first ``C / shift_div`` take the
previous segment's values, the next ``C / shift_div`` the next segment's, the rest stay, and zeros fill in
at the ends. With ``shift_div=8`` that is 1/8 of the channels in each direction, 1/4 in all, as in the paper
and in the 2019 PaddleVideo TSM (``temporal_shift`` with ratio 1/8). The shift has no parameters, so TSM
has exactly TSN's. Dropout 0.5 before the classifier, whose bias learns at twice the rate without weight
decay, as in that model.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from .registry import register_model
from .tsn import TSN


def temporal_shift(x: paddle.Tensor, seg_num: int, shift_div: int = 8) -> paddle.Tensor:
    """Shift ``[N * seg_num, C, H, W]`` along the segments: channels ``[0, C/shift_div)`` from ``t - 1``,
    ``[C/shift_div, 2C/shift_div)`` from ``t + 1``, zeros past the ends; same shape."""
    return F.temporal_shift(x, seg_num, shift_ratio=1.0 / shift_div)


class TemporalShift(nn.Layer):
    """``temporal_shift`` as a layer for a fixed ``seg_num``."""

    def __init__(self, seg_num: int, shift_div: int = 8):
        super().__init__()
        self.seg_num, self.shift_div = seg_num, shift_div

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return temporal_shift(x, self.seg_num, self.shift_div)

    def extra_repr(self) -> str:
        return f"seg_num={self.seg_num}, shift_div={self.shift_div}"


class TSM(TSN):
    """TSM: frames ``[N, seg_num, 3, H, W]`` -> logits ``[N, num_classes]``; ``seg_num`` is fixed when built."""

    #: the shift needs exactly ``seg_num`` segments, at test time too
    fixed_segments = True

    def __init__(self, *, num_classes: int = 400, depth: int = 50, seg_num: int = 8, shift_div: int = 8,
                 dropout: float = 0.5, base_width: int = 64):
        bias_attr = paddle.ParamAttr(learning_rate=2.0, regularizer=paddle.regularizer.L2Decay(0.0))
        super().__init__(num_classes=num_classes, depth=depth, seg_num=seg_num, dropout=dropout,
                         base_width=base_width, temporal=lambda channels: TemporalShift(seg_num, shift_div),
                         fc_bias_attr=bias_attr)

    def forward(self, frames: paddle.Tensor) -> paddle.Tensor:
        """``frames`` ``[N, seg_num, 3, H, W]`` -> logits ``[N, num_classes]``."""
        if frames.ndim == 5 and frames.shape[1] != self.seg_num:
            raise ValueError(f"TSM was built for seg_num={self.seg_num} segments but got {frames.shape[1]} "
                             f"(frames {list(frames.shape)}); build it with seg_num={frames.shape[1]}")
        return super().forward(frames)


def _create_tsm(**kwargs) -> TSM:
    return TSM(**kwargs)


@register_model(
    "tsm",
    task="video classification (Kinetics-400 frames)",
    inputs="frames [N, seg_num, 3, H, W]: one RGB frame per segment, ImageNet-normalised (seed: 8 x 224x224)",
    config="tsm.yaml",
)
def tsm(**kwargs) -> TSM:
    """TSM: ResNet-50 with a residual shift of 1/8 of the channels each way, 8 segments, 400 classes."""
    return _create_tsm(**kwargs)
