"""Non-local neural networks (Wang et al., arXiv 1711.07971) on Kinetics-400 clips.

A C2D or I3D ResNet (``resnet.ResNet3D``) with space-time non-local blocks after every other residual
block of res3 and res4 (ResNet-50: after blocks 1 and 3 of res3 and 1, 3 and 5 of res4, five in all; in
ResNet-101's res4 after blocks 6, 13 and 20), then average pooling, dropout 0.5 and a linear classifier.

The block is the embedded-Gaussian version with a bottleneck of half the channels: ``theta``, ``phi``,
``g`` are 1x1x1 convs, ``phi`` and ``g`` read a 1x2x2 max-pooled input, the affinity is
``softmax(theta^T phi / sqrt(C / 2))``, and ``z = x + BN(W_z y)`` with the BN's scale starting at 0, so
every block starts as the identity. Settings and initialisation (convs normal with std 0.01, zero biases,
classifier normal with std 0.01; the default arch C2D, ``video_arc_choice: 1``) follow the 2019
PaddleVideo Non-local model.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from .registry import register_model
from .resnet import ResNet3D, stage_blocks, stage_channels


def normal_attrs(std: float = 0.01) -> dict:
    """``weight_attr``/``bias_attr``: weights normal with ``std``, zero bias."""
    return dict(weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, std)),
                bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


class NonLocalBlock(nn.Layer):
    """Embedded-Gaussian space-time non-local block: ``[N, C, T, H, W]`` -> same; the identity at init."""

    def __init__(self, channels: int, inner_channels: int | None = None, subsample: bool = True):
        super().__init__()
        inner = inner_channels or channels // 2
        self.scale = inner ** -0.5
        self.theta = nn.Conv3D(channels, inner, 1, **normal_attrs())
        self.phi = nn.Conv3D(channels, inner, 1, **normal_attrs())
        self.g = nn.Conv3D(channels, inner, 1, **normal_attrs())
        self.pool = nn.MaxPool3D((1, 2, 2), (1, 2, 2)) if subsample else nn.Identity()
        self.out = nn.Conv3D(inner, channels, 1, **normal_attrs())
        self.bn = nn.BatchNorm3D(channels, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        n, _, t, h, w = x.shape
        query = self.theta(x).flatten(2)                                        # [N, C', THW]
        pooled = self.pool(x)
        key, value = self.phi(pooled).flatten(2), self.g(pooled).flatten(2)     # [N, C', M]
        affinity = F.softmax(paddle.matmul(query, key, transpose_x=True) * self.scale, axis=-1)  # [N, THW, M]
        y = paddle.matmul(value, affinity, transpose_y=True)                     # [N, C', THW]
        return x + self.bn(self.out(y.reshape([n, -1, t, h, w])))


def nonlocal_positions(depth: int, stages: tuple[int, ...] = (3, 4)) -> list[tuple[int, int]]:
    """``(stage, block)`` after which a non-local block goes, ``stage`` 1..4 for res2..res5 (``layer1``..).

    ``stages`` are the paper's names (3 = res3). Every other block, starting with the second; in
    ResNet-101's res4 every seventh, starting with the seventh.
    """
    positions = []
    for res in stages:
        if res not in (2, 3, 4, 5):
            raise ValueError(f"non-local stage res{res} does not exist; use 2..5")
        every = 7 if depth == 101 and res == 4 else 2
        positions += [(res - 1, i) for i in range(stage_blocks(depth)[res - 2]) if i % every == every - 1]
    return positions


class NonLocalNet(nn.Layer):
    """C2D/I3D ResNet with non-local blocks: clips ``[N, 3, T, H, W]`` -> logits ``[N, num_classes]``.

    ``arch``: ``"c2d"`` or ``"i3d"``; ``nonlocal_stages=()`` gives the plain C2D/I3D baseline.
    """

    def __init__(self, *, num_classes: int = 400, depth: int = 50, arch: str = "c2d", base_width: int = 64,
                 dropout: float = 0.5, nonlocal_stages: tuple[int, ...] = (3, 4)):
        super().__init__()
        channels = stage_channels(depth, base_width)
        positions = nonlocal_positions(depth, tuple(nonlocal_stages))
        blocks = {(s, i): NonLocalBlock(channels[s - 1]) for s, i in positions}
        self.backbone = ResNet3D(depth, arch=arch, num_classes=0, base_width=base_width, extra_blocks=blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, num_classes, **normal_attrs())

    def forward(self, clips: paddle.Tensor) -> paddle.Tensor:
        """``clips`` ``[N, 3, T, H, W]`` (T even) -> logits ``[N, num_classes]``."""
        if clips.ndim != 5:
            raise ValueError(f"expected clips [N, 3, T, H, W], got shape {list(clips.shape)}")
        return self.fc(self.dropout(self.backbone(clips)))


def _create_non_local(**kwargs) -> NonLocalNet:
    return NonLocalNet(**kwargs)


@register_model(
    "non_local",
    task="video classification (Kinetics-400 frames)",
    inputs="clips [N, 3, T, H, W]: T RGB frames, mean 114.75, std 57.375 (seed: 8 frames at sample rate 8, "
           "224x224)",
    config="non_local.yaml",
)
def non_local(**kwargs) -> NonLocalNet:
    """Non-local: C2D ResNet-50 (or arch="i3d") with 5 non-local blocks in res3/res4, 8 frames, 400 classes."""
    return _create_non_local(**kwargs)
