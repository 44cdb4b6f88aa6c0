"""StNet (He et al., arXiv 1811.01549) on Kinetics-400 RGB frames.

A video gives ``seg_num`` segments of ``seglen`` consecutive frames; each segment's frames are stacked on
the channel axis into one "super-image" of ``seglen * 3`` channels (frame-major: frame 0's RGB, frame 1's
RGB, ...). A 2D ResNet whose first conv takes those channels runs on every super-image. After res3 and res4
a temporal modelling block mixes the segments: a 3x1x1 conv over the segment axis (with bias, ReLU), BN, plus
its input. The pooled features ``[N, C, seg_num]`` go through the temporal Xception block (BN, then a
depthwise temporal conv of kernel 3 and a 1x1 conv to ``C / 2`` channels, BN + ReLU, again a depthwise
temporal conv and a 1x1 conv, added to a 1x1 projection of the BN'd input, BN + ReLU), a max over segments
and a linear classifier. Layout and initialisation (He-uniform convs, zero biases, classifier uniform in
``+-1/sqrt(C)``) follow the 2019 PaddleVideo StNet; it has no dropout.
"""

from __future__ import annotations

import paddle
from paddle import nn

from .registry import register_model
from .resnet import ResNet, stage_channels
from .tsn import fold_segments, uniform_linear


def super_images(frames: paddle.Tensor, seglen: int) -> paddle.Tensor:
    """Stack each segment's frames on channels: ``[N, seg_num * seglen, 3, H, W]`` or
    ``[N, seg_num, seglen, 3, H, W]`` -> ``[N, seg_num, seglen * 3, H, W]`` (frame-major channels)."""
    n, h, w = frames.shape[0], frames.shape[-2], frames.shape[-1]
    return frames.reshape([n, -1, seglen * frames.shape[-3], h, w])


def he_conv_attrs() -> dict:
    """``weight_attr``/``bias_attr`` for a conv with He-uniform weights and a zero bias."""
    return dict(weight_attr=paddle.ParamAttr(initializer=nn.initializer.KaimingUniform()),
                bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


class TemporalModeling(nn.Layer):
    """``x + BN(relu(conv3x1x1(x)))`` over the segment axis: ``[N * T, C, H, W]`` -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3D(channels, channels, (3, 1, 1), padding=(1, 0, 0), **he_conv_attrs())
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm3D(channels)

    def forward(self, x: paddle.Tensor, seg_num: int) -> paddle.Tensor:
        nt, c, h, w = x.shape
        clip = x.reshape([-1, seg_num, c, h, w]).transpose([0, 2, 1, 3, 4])
        clip = clip + self.bn(self.relu(self.conv(clip)))
        return clip.transpose([0, 2, 1, 3, 4]).reshape([nt, c, h, w])


class TemporalXception(nn.Layer):
    """The temporal Xception block: ``[N, C, T]`` -> ``[N, out_channels, T]``."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm1D(channels)
        self.att_conv = nn.Conv1D(channels, channels, 3, padding=1, groups=channels, **he_conv_attrs())
        self.att_2 = nn.Conv1D(channels, out_channels, 1, **he_conv_attrs())
        self.bndw = nn.BatchNorm1D(out_channels)
        self.att1 = nn.Conv1D(out_channels, out_channels, 3, padding=1, groups=out_channels, **he_conv_attrs())
        self.att1_2 = nn.Conv1D(out_channels, out_channels, 1, **he_conv_attrs())
        self.dw = nn.Conv1D(channels, out_channels, 1, **he_conv_attrs())
        self.bn2 = nn.BatchNorm1D(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(x)
        att = self.relu(self.bndw(self.att_2(self.att_conv(x))))
        att = self.att1_2(self.att1(att))
        return self.relu(self.bn2(self.dw(x) + att))


class StNet(nn.Layer):
    """StNet: super-images ``[N, T, seglen * 3, H, W]`` -> logits ``[N, num_classes]``, any ``T``
    (trained on ``seg_num``, the seed tests on 25)."""

    def __init__(self, *, num_classes: int = 400, depth: int = 50, seg_num: int = 7, seglen: int = 5,
                 base_width: int = 64):
        super().__init__()
        self.seg_num, self.seglen = seg_num, seglen
        self.backbone = ResNet(depth, num_classes=0, in_channels=3 * seglen, base_width=base_width)
        _, res3, res4, res5 = stage_channels(depth, base_width)
        self.temporal3 = TemporalModeling(res3)
        self.temporal4 = TemporalModeling(res4)
        self.xception = TemporalXception(res5, res5 // 2)
        self.fc = uniform_linear(res5 // 2, num_classes, bound_dim=res5)

    def forward(self, frames: paddle.Tensor) -> paddle.Tensor:
        """``frames`` ``[N, T, seglen * 3, H, W]`` (see ``super_images``) -> logits ``[N, num_classes]``."""
        if frames.ndim != 5 or frames.shape[2] != 3 * self.seglen:
            raise ValueError(f"StNet with seglen={self.seglen} expects super-images [N, seg_num, "
                             f"{3 * self.seglen}, H, W], got {list(frames.shape)}; see super_images()")
        n, t = frames.shape[0], frames.shape[1]
        net = self.backbone
        x = net.layer2(net.layer1(net.forward_stem(fold_segments(frames))))
        x = net.layer3(self.temporal3(x, t))
        x = net.layer4(self.temporal4(x, t))
        x = net.avgpool(x).reshape([n, t, -1]).transpose([0, 2, 1])
        return self.fc(self.xception(x).max(axis=2))


def _create_stnet(**kwargs) -> StNet:
    return StNet(**kwargs)


@register_model(
    "stnet",
    task="video classification (Kinetics-400 frames)",
    inputs="super-images [N, seg_num, seglen*3, H, W]: seglen consecutive RGB frames per segment stacked "
           "on channels, ImageNet-normalised (seed: 7 x 15 x 224x224)",
    config="stnet.yaml",
)
def stnet(**kwargs) -> StNet:
    """StNet: ResNet-50 on 7 super-images of 5 frames, temporal modelling after res3/res4, temporal Xception."""
    return _create_stnet(**kwargs)
