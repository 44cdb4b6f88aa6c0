"""C-TCN temporal action detection (the 2019 PaddleVideo model, ActivityNet 1.3) on per-snippet concept scores.

The input is an image ``[N, 1, rows, concepts]``: ``rows`` time steps resized to 512, and 402 concept
columns (201 rgb + 201 flow class scores of a SENet152). Every ``(k, 1)`` convolution runs along time
and is shared across concepts; only the heads mix concepts, with a ``(1, concepts)`` kernel.

- Backbone: two (7, 1) stride-2 stem convolutions, then ResNet-50 bottleneck stages [3, 4, 6, 3] whose
  (3, 1) convolutions carry the stride 2 along time (convolutions without bias, BN, ReLU).
- FPN: lateral 1x1 convolutions, bilinear top-down upsampling (``align_corners=True``, as fluid's
  ``image_resize``), (3, 1) smoothing, and extra stride-2 levels on top of c5: 8 levels of 128, 64, ...,
  1 positions at the seed.
- Heads shared by all levels: dropout 0.5, a (3, 1) convolution, then a (1, concepts) one giving 7
  anchors x 2 offsets (``10 * sigmoid - 5``) and 7 anchors x (classes + 1) logits.

Convolution weights are uniform in ``+-1/sqrt(fan_in)``, biases zero. Dropout keeps fluid's
``downgrade_in_infer`` mode (Paddle 3's ``downscale_in_infer``): no scaling while training, outputs
x 0.5 at inference. 318,021,421 trainable parameters at the seed, 91% of them in the (1, 402)
classification convolution.

The anchors, their matching and the offset encoding are numpy code in
``videotk.trainers.targets`` (``ctcn_anchors``, ``ctcn_targets``, ``decode_ctcn``). ``ctcn_loss`` fixes the
2019 loss's two failures: an int64 / float32 comparison that Paddle 3 refuses in the hard negative
mining, and a NaN when the batch has no positive anchor (the normaliser is at least 1).
"""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from .registry import register_model

ANCHORS_PER_POSITION = 7
NEGATIVES_PER_POSITIVE = 3
LOC_WEIGHT = 2.0


def _uniform_conv(in_channels: int, out_channels: int, kernel: tuple[int, int], *, stride: int = 1,
                  padding: tuple[int, int] = (0, 0), bias: bool = True) -> nn.Conv2D:
    """``nn.Conv2D`` with weights uniform in ``+-1/sqrt(in_channels * kh * kw)``; bias zero, or none."""
    bound = 1.0 / math.sqrt(in_channels * kernel[0] * kernel[1])
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False
    return nn.Conv2D(in_channels, out_channels, kernel, stride=(stride, 1), padding=padding,
                     weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)),
                     bias_attr=bias_attr)


def _time_conv(in_channels: int, out_channels: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2D:
    """A (3, 1) convolution along time, same padding."""
    return _uniform_conv(in_channels, out_channels, (3, 1), stride=stride, padding=(1, 0), bias=bias)


class ConvBN(nn.Sequential):
    """Convolution (no bias) along time, batch norm, optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, size: int, *, stride: int = 1, relu: bool = True):
        layers = [_uniform_conv(in_channels, out_channels, (size, 1), stride=stride, padding=(size // 2, 0),
                                bias=False), nn.BatchNorm2D(out_channels)]
        super().__init__(*layers, *([nn.ReLU()] if relu else []))


class Bottleneck(nn.Layer):
    """1x1 -> (3, 1) with the stride -> 1x1 (x4 channels), plus a projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, planes: int, stride: int):
        super().__init__()
        self.branch = nn.Sequential(ConvBN(in_channels, planes, 1), ConvBN(planes, planes, 3, stride=stride),
                                    ConvBN(planes, 4 * planes, 1, relu=False))
        project = in_channels != 4 * planes or stride != 1
        self.shortcut = ConvBN(in_channels, 4 * planes, 1, stride=stride, relu=False) if project else nn.Identity()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


def _stage(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*[Bottleneck(in_channels if i == 0 else 4 * planes, planes, stride if i == 0 else 1)
                           for i in range(blocks)])


def _upsample_add(top: paddle.Tensor, lateral: paddle.Tensor) -> paddle.Tensor:
    return F.interpolate(top, size=lateral.shape[2:], mode="bilinear", align_corners=True) + lateral


class CTCNBackbone(nn.Layer):
    """Stem, four bottleneck stages and the FPN: ``[N, 1, rows, W]`` -> ``num_levels`` maps
    ``[N, fpn_dim, rows / 4 / 2^l, W]``, finest first."""

    def __init__(self, *, base_width: int, fpn_dim: int, num_levels: int, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(1, base_width // 2, 7, stride=2), ConvBN(base_width // 2, base_width, 7,
                                                                                  stride=2))
        planes = [base_width * 2 ** i for i in range(4)]
        ins = [base_width] + [4 * p for p in planes[:-1]]
        self.stages = nn.LayerList([_stage(c, p, n, 1 if i == 0 else 2)
                                    for i, (c, p, n) in enumerate(zip(ins, planes, blocks))])
        self.laterals = nn.LayerList([_uniform_conv(4 * p, fpn_dim, (1, 1)) for p in planes])
        self.smooth = nn.LayerList([_time_conv(fpn_dim, fpn_dim) for _ in range(3)])
        self.extra = nn.LayerList([_time_conv(4 * planes[-1] if i == 0 else fpn_dim, fpn_dim, stride=2)
                                   for i in range(num_levels - 4)])

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        c = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            c.append(x)
        top = self.laterals[3](c[3])
        pyramid = [top]
        for level in (2, 1, 0):
            top = _upsample_add(top, self.laterals[level](c[level]))
            pyramid.insert(0, top)
        pyramid[:3] = [smooth(p) for smooth, p in zip(self.smooth, pyramid[:3])]
        x = c[3]
        for i, conv in enumerate(self.extra):
            x = conv(x if i == 0 else F.relu(x))
            pyramid.append(x)
        return pyramid


class CTCN(nn.Layer):
    """C-TCN: concept scores ``[N, 1, img_size, concept_size]`` -> (loc ``[N, A, 2]``, conf ``[N, A, num_classes + 1]``).

    ``A = 7 * sum(level sizes)`` (1785 at the seed), in the order of
    ``videotk.trainers.targets.ctcn_anchors(img_size, num_levels)``. ``loc`` are offsets in ``(-5, 5)``
    (decode with ``decode_ctcn``), ``conf`` are logits with class 0 the background. ``img_size`` must be a
    multiple of ``2 ** (num_levels + 1)``. Tiny settings: e.g. ``img_size=64, num_levels=5,
    concept_size=10, base_width=8, fpn_dim=16, loc_dim=8, cls_dim=16`` (217 anchors).
    """

    def __init__(self, *, num_classes: int = 200, concept_size: int = 402, img_size: int = 512, num_levels: int = 8,
                 base_width: int = 64, fpn_dim: int = 512, loc_dim: int = 256, cls_dim: int = 512,
                 dropout: float = 0.5):
        super().__init__()
        if num_levels < 4 or img_size % 2 ** (num_levels + 1):
            raise ValueError(f"C-TCN img_size {img_size} must be a multiple of 2 ** (num_levels + 1) with "
                             f"num_levels >= 4, got num_levels={num_levels}")
        self.num_classes, self.concept_size, self.img_size = num_classes, concept_size, img_size
        self.backbone = CTCNBackbone(base_width=base_width, fpn_dim=fpn_dim, num_levels=num_levels)
        self.dropout = nn.Dropout(dropout, mode="downscale_in_infer")
        self.loc_conv = _time_conv(fpn_dim, loc_dim)
        self.loc_out = _uniform_conv(loc_dim, 2 * ANCHORS_PER_POSITION, (1, concept_size))
        self.cls_conv = _time_conv(fpn_dim, cls_dim)
        self.cls_out = _uniform_conv(cls_dim, (num_classes + 1) * ANCHORS_PER_POSITION, (1, concept_size))

    def _per_anchor(self, x: paddle.Tensor, width: int) -> paddle.Tensor:
        """``[N, 7 * width, H, 1]`` -> ``[N, 7 * H, width]`` (position by position, 7 anchors each)."""
        return x.transpose([0, 2, 3, 1]).reshape([x.shape[0], -1, width])

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """``x`` ``[N, 1, img_size, concept_size]`` -> (loc ``[N, A, 2]``, conf ``[N, A, num_classes + 1]``)."""
        if x.ndim != 4 or list(x.shape[1:]) != [1, self.img_size, self.concept_size]:
            raise ValueError(f"C-TCN expects [N, 1, {self.img_size}, {self.concept_size}], got {list(x.shape)}")
        loc, conf = [], []
        for level in self.backbone(x):
            t = self.loc_out(self.loc_conv(self.dropout(level)))
            loc.append(self._per_anchor(10.0 * F.sigmoid(t) - 5.0, 2))
            conf.append(self._per_anchor(self.cls_out(self.cls_conv(self.dropout(level))), self.num_classes + 1))
        return paddle.concat(loc, axis=1), paddle.concat(conf, axis=1)


def hard_negatives(ce: paddle.Tensor, pos: paddle.Tensor, eligible: paddle.Tensor) -> paddle.Tensor:
    """Negatives kept per sample: the ``3 * positives`` eligible non-positive anchors of highest loss.

    ``ce``, ``pos`` and ``eligible`` ``[N, A]`` -> bool ``[N, A]``. The ranks are counted among the
    negatives only; the 2019 code ranked positives with them at loss 0, which differs only when
    fewer than ``3 * positives`` negatives have a loss above 0."""
    candidates = eligible & ~pos
    score = paddle.where(candidates, ce.detach(), paddle.full_like(ce, -1.0))
    rank = paddle.argsort(paddle.argsort(-score, axis=1), axis=1)
    quota = NEGATIVES_PER_POSITIVE * pos.astype("int64").sum(axis=1, keepdim=True)
    return candidates & (rank < quota)


def ctcn_loss(loc: paddle.Tensor, conf: paddle.Tensor, loc_targets: paddle.Tensor, cls_targets: paddle.Tensor
              ) -> tuple[paddle.Tensor, dict[str, paddle.Tensor]]:
    """C-TCN loss -> (total, {"loc", "cls"}), total = (2 * loc + cls) / positives, as the seed.

    ``loc`` ``[N, A, 2]``, ``conf`` ``[N, A, C + 1]`` (the model's outputs); ``loc_targets`` ``[N, A, 2]``,
    ``cls_targets`` ``[N, A]`` int (``ctcn_targets``; 0 background, negative values ignored). loc is the
    smooth-L1 over positive anchors; cls the softmax cross-entropy over positives and, per sample, the
    ``3 x`` as many hardest negatives; both summed and divided by the batch's positives (at least 1).
    The parts are returned already divided (``loc`` includes the factor 2).
    """
    cls_targets = cls_targets.astype("int64")
    pos = cls_targets > 0
    eligible = cls_targets >= 0
    num_pos = paddle.clip(pos.astype(loc.dtype).sum(), min=1.0)
    smooth = F.smooth_l1_loss(loc, loc_targets.astype(loc.dtype), reduction="none", delta=1.0)
    loc_sum = (smooth.sum(axis=-1) * pos.astype(loc.dtype)).sum()
    labels = paddle.clip(cls_targets, min=0).unsqueeze(-1)
    ce = F.cross_entropy(conf, labels, reduction="none").squeeze(-1)
    selected = (pos | hard_negatives(ce, pos, eligible)).astype(ce.dtype)
    cls_sum = (ce * selected).sum()
    parts = {"loc": LOC_WEIGHT * loc_sum / num_pos, "cls": cls_sum / num_pos}
    return parts["loc"] + parts["cls"], parts


@register_model(
    "ctcn",
    task="temporal action detection on ActivityNet 1.3",
    inputs="image [N, 1, 512, 402]: 512 resized time rows of 201 rgb + 201 flow concept scores",
    config="ctcn.yaml",
)
def ctcn(**kwargs) -> CTCN:
    """C-TCN: ResNet-50 FPN along time over 402 concept columns, 1785 anchors of 200 classes + background."""
    return CTCN(**kwargs)
