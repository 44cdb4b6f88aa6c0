"""BMN, the Boundary-Matching Network (Lin et al., arXiv 1907.09702), on ActivityNet 1.3 snippet features.

A shared base of two grouped 1-D convolutions feeds (a) the temporal evaluation module, two small
branches giving start and end probabilities per snippet, and (b) the proposal evaluation module: a 1-D
convolution, the boundary-matching (BM) layer, which samples ``num_sample`` points of every candidate
``[start s, duration d]`` through a fixed ``[T, num_sample * D * T]`` interpolation matrix, a 3-D
convolution that pools those samples, and 2-D convolutions giving two confidence maps
``[2, D, T]``: channel 0 regressed to the IoU, channel 1 classified at IoU > 0.9.

The layer list, initialisation and losses follow the 2019 PaddleVideo code (2,782,980 parameters at the
seed, independent of ``tscale``). Kept from it:

- the 1-D convolutions' init bound uses the full input size even when grouped (``uniform_conv1d``);
  the 2-D and 3-D convolutions keep Paddle's default init, the same as fluid's;
- the interpolation weights of a sample point in (-1, 0) all land on snippet 0 (``math.modf``
  semantics), points outside ``[0, T - 1]`` are dropped;
- the regression loss draws its two sampling fields once per batch, shared by every video (quirk M3).

Changed on purpose: every ratio in the losses is guarded, so a batch with no IoU above 0.9 (or no
positive snippet) gives a finite loss, where the 2019 code gave NaN (PaddlePaddle/models#4724); the
sampling keeps a medium or low cell with probability ``min(r, 1)`` (in 2019 ``r > 1`` selected every
cell of the map, inside the mask or not); the random fields are seeded. The sample mask is a
non-persistable buffer (derived from the settings, so not in checkpoints).
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from .bsn import binary_logistic_loss, sampled_regression_loss, uniform_conv1d
from .registry import register_model


def boundary_matching_mask(tscale: int, dscale: int, *, prop_boundary_ratio: float = 0.5, num_sample: int = 32,
                           num_sample_perbin: int = 3) -> np.ndarray:
    """The BM layer's sampling matrix ``[tscale, num_sample * dscale * tscale]`` float32, column order
    (sample, d, s): ``features [C, T] @ mask`` reshaped to ``[C, num_sample, dscale, tscale]``.

    Candidate ``(s, d)`` with ``s + d < tscale`` spans snippets ``s .. s + d``; its sampling region adds
    ``prop_boundary_ratio * (d + 1)`` on both sides. The region is sampled at ``num_sample *
    num_sample_perbin`` evenly spaced points, each spread on its floor and ceiling snippet by linear
    interpolation, and each of the ``num_sample`` bins averages its ``num_sample_perbin`` points.
    Other candidates have all-zero columns.
    """
    points_per_cell = num_sample * num_sample_perbin
    d, s = np.meshgrid(np.arange(dscale), np.arange(tscale), indexing="ij")
    margin = prop_boundary_ratio * (d + 1.0)
    lo, hi = s - margin, s + d + margin
    points = lo[..., None] + (hi - lo)[..., None] / (points_per_cell - 1.0) * np.arange(points_per_cell)
    frac, down = np.modf(points)
    bins = np.broadcast_to(np.arange(points_per_cell) // num_sample_perbin, points.shape)
    dd, ss = (np.broadcast_to(a[..., None], points.shape) for a in (d, s))
    inside = np.broadcast_to((s + d < tscale)[..., None], points.shape)
    mask = np.zeros((tscale, num_sample, dscale, tscale), np.float64)
    for position, weight in ((down, 1.0 - frac), (np.ceil(points), frac)):
        position = position.astype(np.int64)
        keep = inside & (position >= 0) & (position < tscale)
        np.add.at(mask, (position[keep], bins[keep], dd[keep], ss[keep]), weight[keep] / num_sample_perbin)
    return mask.reshape(tscale, -1).astype(np.float32)


def proposal_mask(tscale: int, dscale: int) -> np.ndarray:
    """``[dscale, tscale]`` float32: 1 where the candidate ``[s, s + d]`` ends inside the video."""
    d, s = np.meshgrid(np.arange(dscale), np.arange(tscale), indexing="ij")
    return (s + d < tscale).astype(np.float32)


def _conv2d(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2D:
    return nn.Conv2D(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class BMN(nn.Layer):
    """BMN: features ``[N, feat_dim, tscale]`` -> (confidence_map ``[N, 2, dscale, tscale]``,
    start ``[N, tscale]``, end ``[N, tscale]``), all probabilities.

    ``confidence_map[:, 0, d, s]`` is the regressed IoU and ``[:, 1, d, s]`` the classification score of
    the proposal starting at snippet ``s`` and lasting ``d + 1`` snippets; cells with ``s + d >= tscale``
    are meaningless (``proposal_mask``). ``feat_dim`` and ``hidden_dim_1d`` must be multiples of
    ``groups``. Small settings (``tscale`` 16-32, narrow hidden sizes) train on a CPU: the BM layer
    costs ``num_sample * dscale * tscale^2`` multiply-adds per channel and the sample mask holds
    ``num_sample * dscale * tscale^2`` floats (128 MB at the seed).
    """

    def __init__(self, *, tscale: int = 100, dscale: int = 100, feat_dim: int = 400, prop_boundary_ratio: float = 0.5,
                 num_sample: int = 32, num_sample_perbin: int = 3, hidden_dim_1d: int = 256,
                 hidden_dim_2d: int = 128, hidden_dim_3d: int = 512, groups: int = 4):
        super().__init__()
        if not 1 <= dscale <= tscale:
            raise ValueError(f"BMN needs 1 <= dscale <= tscale, got dscale={dscale}, tscale={tscale}")
        self.tscale, self.dscale, self.num_sample = tscale, dscale, num_sample
        self.base1 = uniform_conv1d(feat_dim, hidden_dim_1d, 3, groups=groups)
        self.base2 = uniform_conv1d(hidden_dim_1d, hidden_dim_1d, 3, groups=groups)
        self.start1 = uniform_conv1d(hidden_dim_1d, hidden_dim_1d, 3, groups=groups)
        self.start2 = uniform_conv1d(hidden_dim_1d, 1, 1)
        self.end1 = uniform_conv1d(hidden_dim_1d, hidden_dim_1d, 3, groups=groups)
        self.end2 = uniform_conv1d(hidden_dim_1d, 1, 1)
        self.pem_1d = uniform_conv1d(hidden_dim_1d, hidden_dim_2d, 3)
        mask = boundary_matching_mask(tscale, dscale, prop_boundary_ratio=prop_boundary_ratio,
                                      num_sample=num_sample, num_sample_perbin=num_sample_perbin)
        self.register_buffer("sample_mask", paddle.to_tensor(mask), persistable=False)
        self.pem_3d = nn.Conv3D(hidden_dim_2d, hidden_dim_3d, (num_sample, 1, 1), stride=(num_sample, 1, 1))
        self.pem_2d1 = _conv2d(hidden_dim_3d, hidden_dim_2d, 1)
        self.pem_2d2 = _conv2d(hidden_dim_2d, hidden_dim_2d, 3)
        self.pem_2d3 = _conv2d(hidden_dim_2d, hidden_dim_2d, 3)
        self.pem_2d4 = _conv2d(hidden_dim_2d, 2, 1)

    def boundary_matching(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[N, C, tscale]`` -> ``[N, C, num_sample, dscale, tscale]`` sampled features of every candidate."""
        n, c = x.shape[0], x.shape[1]
        return paddle.matmul(x, self.sample_mask).reshape([n, c, self.num_sample, self.dscale, self.tscale])

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """``x`` ``[N, feat_dim, tscale]`` -> (confidence_map ``[N, 2, dscale, tscale]`` (regression,
        classification), start ``[N, tscale]``, end ``[N, tscale]``)."""
        if x.ndim != 3 or x.shape[2] != self.tscale:
            raise ValueError(f"BMN expects features [N, feat_dim, {self.tscale}], got shape {list(x.shape)}")
        x = F.relu(self.base2(F.relu(self.base1(x))))
        start = F.sigmoid(self.start2(F.relu(self.start1(x)))).squeeze(1)
        end = F.sigmoid(self.end2(F.relu(self.end1(x)))).squeeze(1)
        bm = F.relu(self.pem_3d(self.boundary_matching(F.relu(self.pem_1d(x))))).squeeze(2)
        bm = F.relu(self.pem_2d3(F.relu(self.pem_2d2(F.relu(self.pem_2d1(bm))))))
        return F.sigmoid(self.pem_2d4(bm)), start, end


def bmn_loss(confidence_map: paddle.Tensor, start: paddle.Tensor, end: paddle.Tensor, gt_iou_map: paddle.Tensor,
             gt_start: paddle.Tensor, gt_end: paddle.Tensor, *, rng: np.random.Generator | None = None
             ) -> tuple[paddle.Tensor, dict[str, paddle.Tensor]]:
    """BMN loss -> (total, {"tem", "pem_reg", "pem_cls"}), total = tem + 10 * pem_reg + pem_cls.

    ``confidence_map`` ``[N, 2, D, T]``, ``start``/``end`` ``[N, T]`` (the model's outputs);
    ``gt_iou_map`` ``[N, D, T]``, ``gt_start``/``gt_end`` ``[N, T]`` (``bmn_targets``). Over the whole batch:

    - tem: binary logistic losses of start and end (positives > 0.5, weights ``0.5 n / p`` and
      ``0.5 n / (n - p)``);
    - pem_reg: squared error of channel 0 on the valid cells, every cell with IoU > 0.7, medium cells
      (0.3, 0.7] and low ones [0, 0.3] sampled down to about as many (one ``[D, T]`` field per batch);
    - pem_cls: binary logistic loss of channel 1, positives IoU > 0.9, over the valid cells.

    ``rng`` draws the sampling fields (default: Paddle's generator).
    """
    dscale, tscale = gt_iou_map.shape[-2:]
    valid = paddle.to_tensor(proposal_mask(tscale, dscale))
    tem = (binary_logistic_loss(start, gt_start, neg_offset=0.0)
           + binary_logistic_loss(end, gt_end, neg_offset=0.0))
    reg = sampled_regression_loss(confidence_map[:, 0], gt_iou_map, high=0.7, low=0.3, valid=valid,
                                  field_shape=[dscale, tscale], rng=rng)
    cls = binary_logistic_loss(confidence_map[:, 1], gt_iou_map * valid, threshold=0.9, neg_offset=0.0,
                               valid=valid)
    return tem + 10.0 * reg + cls, {"tem": tem, "pem_reg": reg, "pem_cls": cls}


@register_model(
    "bmn",
    task="temporal action proposals on ActivityNet 1.3",
    inputs="feat [N, 400, tscale] snippet features (seed tscale = dscale = 100)",
    config="bmn.yaml",
)
def bmn(**kwargs) -> BMN:
    """BMN: boundary probabilities and a 100 x 100 boundary-matching confidence map from 400-d snippets."""
    return BMN(**kwargs)
