"""ResNet backbones (He et al., arXiv 1512.03385) for the Kinetics models: 2D nets run per frame, and
3D nets over clips for C2D and I3D (Wang et al., arXiv 1711.07971).

Parameter names follow ``paddle.vision.models.resnet`` (``conv1``, ``bn1``, ``layer1``..``layer4`` with
``.{i}.conv1/bn1/.../downsample.0/.1``, ``fc``), so an ImageNet ``.pdparams`` in that layout loads by name
(``pretrained.load_pretrained``). The options the video models use:

- ``base_width``: channels of the stem (64 in the published nets; 8 or 16 make tiny test nets);
- ``in_channels``: 3 for RGB frames, ``seglen * 3`` for StNet's super-images;
- ``temporal``: a factory ``channels -> Layer`` whose layer runs on the input of every residual branch,
  before its first conv (TSM's residual shift); parameter-free layers leave the names unchanged;
- ``extra_blocks`` (3D): layers run after given residual blocks (the non-local blocks).

The 3D net is C2D (all temporal kernels 1: 2D kernels applied per frame) or I3D (temporal kernel 5 in the
stem and 3 in the first conv of some blocks), both with a temporal max pool (stride 2) after ``layer1``,
as in the 2019 PaddleVideo Non-local model.
"""

from __future__ import annotations

from typing import Callable, Mapping

import paddle
from paddle import nn

STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

TemporalFactory = Callable[[int], nn.Layer]


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, kt: int | None = None) -> nn.Layer:
    """A bias-free ``kernel x kernel`` conv, ``padding = kernel // 2``: 2D when ``kt`` is None, else 3D
    with temporal kernel ``kt`` (padding ``kt // 2``) and spatial stride only."""
    if kt is None:
        return nn.Conv2D(in_channels, out_channels, kernel, stride, kernel // 2, bias_attr=False)
    return nn.Conv3D(in_channels, out_channels, (kt, kernel, kernel), (1, stride, stride),
                     (kt // 2, kernel // 2, kernel // 2), bias_attr=False)


def batch_norm(channels: int, kt: int | None = None, zero_init: bool = False) -> nn.Layer:
    """``BatchNorm2D`` (``kt`` None) or ``BatchNorm3D``; ``zero_init`` starts its scale at 0."""
    weight_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if zero_init else None
    return (nn.BatchNorm2D if kt is None else nn.BatchNorm3D)(channels, weight_attr=weight_attr)


def projection(in_channels: int, out_channels: int, stride: int, kt: int | None) -> nn.Sequential | None:
    """The shortcut's 1x1 conv + BN (``downsample``) when shape changes, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    flat = None if kt is None else 1
    return nn.Sequential(conv(in_channels, out_channels, 1, stride, flat), batch_norm(out_channels, flat))


class ResidualBlock(nn.Layer):
    """``relu(branch(temporal(x)) + shortcut(x))``; subclasses build ``branch`` from ``conv1/bn1/...``, then
    ``downsample`` (the shortcut's projection, or None)."""

    def __init__(self, in_channels: int, temporal: TemporalFactory | None):
        super().__init__()
        self.temporal = temporal(in_channels) if temporal else nn.Identity()
        self.relu = nn.ReLU()

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.branch(self.temporal(x)) + shortcut)


class BasicBlock(ResidualBlock):
    """3x3 -> 3x3 (ResNet-18/34). In 3D the first conv has temporal kernel ``kt``."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, kt: int | None = None,
                 temporal: TemporalFactory | None = None, zero_init_residual: bool = False):
        super().__init__(in_channels, temporal)
        flat = None if kt is None else 1
        self.conv1 = conv(in_channels, planes, 3, stride, kt)
        self.bn1 = batch_norm(planes, kt)
        self.conv2 = conv(planes, planes, 3, 1, flat)
        self.bn2 = batch_norm(planes, flat, zero_init_residual)
        self.downsample = projection(in_channels, planes, stride, kt)

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class BottleneckBlock(ResidualBlock):
    """1x1 -> 3x3 (stride here) -> 1x1 x4 (ResNet-50/101/152). In 3D the first 1x1 becomes ``kt x 1 x 1``."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, kt: int | None = None,
                 temporal: TemporalFactory | None = None, zero_init_residual: bool = False):
        super().__init__(in_channels, temporal)
        flat = None if kt is None else 1
        self.conv1 = conv(in_channels, planes, 1, 1, kt)
        self.bn1 = batch_norm(planes, kt)
        self.conv2 = conv(planes, planes, 3, stride, flat)
        self.bn2 = batch_norm(planes, flat)
        self.conv3 = conv(planes, planes * 4, 1, 1, flat)
        self.bn3 = batch_norm(planes * 4, flat, zero_init_residual)
        self.downsample = projection(in_channels, planes * 4, stride, kt)

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


def stage_blocks(depth: int) -> tuple[int, int, int, int]:
    """Residual blocks in ``layer1``..``layer4``: ``(3, 4, 6, 3)`` for ResNet-50."""
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"ResNet depth {depth} is not supported; use one of {sorted(STAGE_BLOCKS)}")
    return STAGE_BLOCKS[depth]


def block_type(depth: int) -> type[ResidualBlock]:
    """``BasicBlock`` below depth 50, else ``BottleneckBlock``."""
    stage_blocks(depth)
    return BasicBlock if depth < 50 else BottleneckBlock


def stage_channels(depth: int, base_width: int = 64) -> tuple[int, int, int, int]:
    """Output channels of ``layer1``..``layer4`` (res2..res5): ``(256, 512, 1024, 2048)`` for ResNet-50."""
    expansion = block_type(depth).expansion
    return tuple(base_width * 2 ** s * expansion for s in range(4))


def i3d_inflated(stage: int, index: int) -> bool:
    """Whether I3D gives block ``index`` of ``stage`` (0 = res2) a temporal kernel of 3: every res2 block,
    the even blocks of res3 and res4, the odd blocks of res5 (ResNet-50: res3 [3,1,3,1], res4
    [3,1,3,1,3,1], res5 [1,3,1])."""
    if stage == 0:
        return True
    return index % 2 == (1 if stage == 3 else 0)


def temporal_kernels(arch: str, depth: int) -> tuple[int, list[list[int]]]:
    """The stem's temporal kernel and, per stage, each block's first conv's: C2D all 1; I3D 5 in the stem
    and 3 where ``i3d_inflated``."""
    counts = stage_blocks(depth)
    if arch == "c2d":
        return 1, [[1] * n for n in counts]
    if arch == "i3d":
        return 5, [[3 if i3d_inflated(s, i) else 1 for i in range(n)] for s, n in enumerate(counts)]
    raise ValueError(f"unknown 3D ResNet arch {arch!r}; use 'c2d' or 'i3d'")


class _ResNetBase(nn.Layer):
    """The stages ``layer1``..``layer4``, global average pooling and an optional ``fc``."""

    def _build_stages(self, depth: int, base_width: int, kernels: list[list[int | None]],
                      temporal: TemporalFactory | None, zero_init_residual: bool) -> int:
        block = block_type(depth)
        in_channels = base_width
        for s, stage_kernels in enumerate(kernels):
            planes = base_width * 2 ** s
            blocks = []
            for i, kt in enumerate(stage_kernels):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(block(in_channels, planes, stride, kt=kt, temporal=temporal,
                                    zero_init_residual=zero_init_residual))
                in_channels = planes * block.expansion
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        return in_channels

    def _build_head(self, num_features: int, num_classes: int) -> None:
        self.num_features = num_features
        self.fc = nn.Linear(num_features, num_classes) if num_classes > 0 else None

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """Logits ``[N, num_classes]``, or pooled features ``[N, num_features]`` when built with ``num_classes=0``."""
        features = self.avgpool(self.forward_features(x)).flatten(1)
        return features if self.fc is None else self.fc(features)


class ResNet(_ResNetBase):
    """2D ResNet: images ``[N, in_channels, H, W]`` -> logits or pooled features (see ``forward``).

    ``forward_stem`` and ``layer1``..``layer4`` can be run one by one to put layers between stages.
    """

    def __init__(self, depth: int = 50, *, num_classes: int = 1000, in_channels: int = 3, base_width: int = 64,
                 temporal: TemporalFactory | None = None, zero_init_residual: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, base_width, 7, 2, 3, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(base_width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(3, 2, 1)
        kernels = [[None] * n for n in stage_blocks(depth)]
        features = self._build_stages(depth, base_width, kernels, temporal, zero_init_residual)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self._build_head(features, num_classes)

    def forward_stem(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[N, C, H, W]`` -> ``[N, base_width, H/4, W/4]``: conv1 (7x7, stride 2), BN, ReLU, 3x3 max pool."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[N, C, H, W]`` -> the last stage's map ``[N, num_features, H/32, W/32]``."""
        x = self.forward_stem(x)
        for stage in self.stages():
            x = stage(x)
        return x


class ResNet3D(_ResNetBase):
    """C2D or I3D ResNet: clips ``[N, in_channels, T, H, W]`` -> logits or pooled features.

    The stem keeps ``T`` (temporal stride 1; max pool 1x3x3, stride 1x2x2, no padding), ``layer1`` is followed
    by a 2x1x1 temporal max pool (stride 2), so ``layer4`` sees ``T / 2`` frames. ``extra_blocks`` maps
    ``(stage, block)`` (stage 1..4 for ``layer1``..``layer4``, block 0-based) to a layer run on that block's
    output ``[N, C, T', H', W']``. All residual branches' last BN start at scale 0 unless
    ``zero_init_residual=False``.
    """

    def __init__(self, depth: int = 50, *, arch: str = "c2d", num_classes: int = 400, in_channels: int = 3,
                 base_width: int = 64, extra_blocks: Mapping[tuple[int, int], nn.Layer] | None = None,
                 zero_init_residual: bool = True):
        super().__init__()
        stem_kt, kernels = temporal_kernels(arch, depth)
        self.conv1 = conv(in_channels, base_width, 7, 2, stem_kt)
        self.bn1 = nn.BatchNorm3D(base_width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3D((1, 3, 3), (1, 2, 2))
        features = self._build_stages(depth, base_width, kernels, None, zero_init_residual)
        self.temporal_pool = nn.MaxPool3D((2, 1, 1), (2, 1, 1))
        self.extra_blocks = nn.LayerDict(self._extra_block_dict(extra_blocks or {}))
        self.avgpool = nn.AdaptiveAvgPool3D(1)
        self._build_head(features, num_classes)

    def _extra_block_dict(self, extra_blocks: Mapping[tuple[int, int], nn.Layer]) -> dict[str, nn.Layer]:
        named = {}
        for (stage, index), layer in extra_blocks.items():
            if not 1 <= stage <= 4 or not 0 <= index < len(self.stages()[stage - 1]):
                raise ValueError(f"extra block at (stage {stage}, block {index}): no such residual block")
            named[f"layer{stage}_{index}"] = layer
        return named

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[N, C, T, H, W]`` -> ``[N, num_features, T/2, H', W']`` (``H' = H/32`` rounded down as pooled)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s, stage in enumerate(self.stages()):
            for i, block in enumerate(stage):
                x = block(x)
                key = f"layer{s + 1}_{i}"
                if key in self.extra_blocks:
                    x = self.extra_blocks[key](x)
            if s == 0:
                x = self.temporal_pool(x)
        return x

