"""BSN, the Boundary-Sensitive Network (Lin et al., arXiv 1806.02964), on ActivityNet 1.3 snippet features.

Two trained parts around a parameter-free proposal generator (PGM, in the task code):

- TEM, the temporal evaluation module: three 1-D convolutions over the ``[N, 400, T]`` feature sequence
  giving per-snippet probabilities of a start, an end and an action;
- PEM, the proposal evaluation module: a two-layer perceptron scoring a proposal's 32-d BSP feature
  with its IoU against the ground truth.

:class:`BSN` holds both, so that one checkpoint carries the chain; it is the registered model.

As in the 2019 PaddleVideo port (not the original TensorFlow BSN): TEM has 256 hidden channels, no
logit scaling, loss weights 1:1:1 and output channels in the order (start, end, action); PEM is
32 -> 128 -> 1 with the 0.1 scalings of its activations and a plain squared error on sampled proposals.

Deliberate changes from the 2019 code, and why:

- PEM's second layer reads the hidden layer. In 2019 it read the input (``fc(input, 1)``), leaving the
  hidden layer dead: 4,257 parameters instead of this model's 4,353.
- The binary logistic loss guards its ratios: a batch without positives gives a finite loss (the 2019
  code divided by the number of positives and gave inf or NaN).
- PEM's sampling keeps a mid or low proposal with probability ``min(r, 1)``; in 2019 a ratio above 1
  selected every row of the batch, whatever its IoU. Its random fields are seeded (``paddle.seed``
  or an explicit ``rng``), where the 2019 ones were not.

The 1-D convolutions and the two losses are shared with BMN (``bmn.py``).
"""

from __future__ import annotations

import math

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from .registry import register_model

_EPS = 1e-6


def uniform_conv1d(in_channels: int, out_channels: int, kernel_size: int, *, groups: int = 1) -> nn.Conv1D:
    """``nn.Conv1D`` (same padding) with weights and bias uniform in ``+-1/sqrt(in_channels * kernel_size)``.

    The bound uses all ``in_channels`` even when the convolution is grouped, as the 2019 code did.
    """
    bound = 1.0 / math.sqrt(in_channels * kernel_size)
    attr = paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    return nn.Conv1D(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups,
                     weight_attr=attr, bias_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)))


def binary_logistic_loss(pred: paddle.Tensor, gt: paddle.Tensor, *, threshold: float = 0.5,
                         neg_offset: float = 1.0, valid: paddle.Tensor | None = None) -> paddle.Tensor:
    """Class-balanced binary logistic loss of probabilities ``pred`` against soft targets ``gt`` (any shape,
    the whole batch at once).

    Positives are ``gt > threshold`` among the ``valid`` entries (all when None); with ``n`` valid entries
    of which ``p`` are positive, the weights are ``0.5 n / p`` for positives and ``0.5 n / (n - p +
    neg_offset)`` for negatives (BSN: ``neg_offset`` 1; BMN: 0), and the loss is the weighted negative
    log-likelihood averaged over the valid entries. Each denominator is at least 1, so a batch without
    positives (or without negatives) gives a finite loss.
    """
    _check_shapes(pred, gt, "binary logistic loss")
    gt = gt.detach().astype(pred.dtype)
    valid = paddle.ones_like(gt) if valid is None else valid.astype(pred.dtype).expand_as(gt)
    pos = (gt > threshold).astype(pred.dtype) * valid
    neg = valid - pos
    n, p = valid.sum(), pos.sum()
    coef_pos = 0.5 * n / paddle.clip(p, min=1.0)
    coef_neg = 0.5 * n / paddle.clip(n - p + neg_offset, min=1.0)
    loglik = coef_pos * (pos * paddle.log(pred + _EPS)).sum() + coef_neg * (neg * paddle.log(1.0 - pred + _EPS)).sum()
    return -loglik / paddle.clip(n, min=1.0)


def _check_shapes(pred: paddle.Tensor, gt: paddle.Tensor, loss: str) -> None:
    if list(pred.shape) != list(gt.shape):
        raise ValueError(f"{loss}: predictions {list(pred.shape)} and targets {list(gt.shape)} differ in shape")


def _uniform_field(shape: list[int], rng: np.random.Generator | None) -> paddle.Tensor:
    """U[0, 1) of ``shape``: from ``rng`` when given, else from Paddle's generator (``paddle.seed``)."""
    if rng is None:
        return paddle.uniform(shape, min=0.0, max=1.0)
    return paddle.to_tensor(rng.random(shape, dtype=np.float32))


def _sample(group: paddle.Tensor, ratio: paddle.Tensor, field: paddle.Tensor) -> paddle.Tensor:
    """Entries of ``group`` (0/1) kept with probability ``min(ratio, 1)``: those where ``field > 1 - ratio``."""
    return group * (field > 1.0 - ratio).astype(group.dtype)


def sampled_regression_loss(pred: paddle.Tensor, gt: paddle.Tensor, *, high: float, low: float,
                            low_ratio: float = 1.0, valid: paddle.Tensor | None = None,
                            field_shape: list[int] | None = None,
                            rng: np.random.Generator | None = None) -> paddle.Tensor:
    """``0.5 * sum(w * (pred - gt)^2) / sum(w)`` over IoU targets ``gt`` balanced by sampling.

    Every high entry (``gt > high``) has weight 1; a medium one (``low < gt <= high``) is kept with
    probability ``n_high / n_medium``, a low one (``0 <= gt <= low``) with ``low_ratio * n_high / n_low``.
    Only ``valid`` entries count (all when None; ``gt`` is zeroed outside them). The uniform fields
    have ``field_shape`` (default ``gt``'s) and broadcast over ``gt``: BMN draws one ``[D, T]`` field
    shared by the batch. With nothing sampled the loss is 0.
    """
    _check_shapes(pred, gt, "sampled regression loss")
    gt = gt.detach().astype(pred.dtype)
    valid = paddle.ones_like(gt) if valid is None else valid.astype(pred.dtype).expand_as(gt)
    gt = gt * valid
    high_mask = (gt > high).astype(pred.dtype)
    mid_mask = ((gt <= high) & (gt > low)).astype(pred.dtype)
    low_mask = ((gt <= low) & (gt >= 0)).astype(pred.dtype) * valid
    n_high = high_mask.sum()
    shape = list(field_shape or gt.shape)
    weights = (high_mask
               + _sample(mid_mask, n_high / paddle.clip(mid_mask.sum(), min=1.0), _uniform_field(shape, rng))
               + _sample(low_mask, low_ratio * n_high / paddle.clip(low_mask.sum(), min=1.0),
                         _uniform_field(shape, rng))).detach()
    return 0.5 * (weights * (pred - gt) ** 2).sum() / paddle.clip(weights.sum(), min=1.0)


class BsnTem(nn.Layer):
    """BSN TEM: features ``[N, feat_dim, T]`` -> probabilities ``[N, 3, T]``, channels (start, end, action).

    Two 3-wide convolutions of ``hidden_dim`` channels with ReLU, then a 1-wide one with a sigmoid;
    weights and biases uniform in ``+-1/sqrt(fan_in)``. Works at any ``T``; the parameter count
    (505,091 at the seed) does not depend on it.
    """

    def __init__(self, *, feat_dim: int = 400, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = uniform_conv1d(feat_dim, hidden_dim, 3)
        self.conv2 = uniform_conv1d(hidden_dim, hidden_dim, 3)
        self.pred = uniform_conv1d(hidden_dim, 3, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``x`` ``[N, feat_dim, T]`` -> ``[N, 3, T]`` probabilities of (start, end, action)."""
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.sigmoid(self.pred(x))


def tem_loss(pred: paddle.Tensor, gt_start: paddle.Tensor, gt_end: paddle.Tensor, gt_action: paddle.Tensor
             ) -> tuple[paddle.Tensor, dict[str, paddle.Tensor]]:
    """TEM loss: ``pred`` ``[N, 3, T]`` (start, end, action), targets ``[N, T]`` each ->
    (total, {"start", "end", "action"}), total = the sum of the three binary logistic losses
    (``binary_logistic_loss`` with threshold 0.5 and BSN's ``+1`` in the negative weight)."""
    parts = {name: binary_logistic_loss(pred[:, i], gt, threshold=0.5, neg_offset=1.0)
             for i, (name, gt) in enumerate((("start", gt_start), ("end", gt_end), ("action", gt_action)))}
    return parts["start"] + parts["end"] + parts["action"], parts


def _xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    return nn.Linear(in_dim, out_dim, weight_attr=paddle.ParamAttr(initializer=nn.initializer.XavierUniform()),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


class BsnPem(nn.Layer):
    """BSN PEM: BSP features ``[..., feat_dim]`` -> IoU scores ``[...]`` in (0, 1).

    ``sigmoid(0.1 * fc2(relu(0.1 * fc1(x))))`` with Xavier-uniform weights and zero biases (fluid's fc
    defaults). ``fc2`` reads the hidden layer; the 2019 code fed it the input instead (see the module
    docstring), so this model has 4,353 parameters at the seed, not 4,257.
    """

    def __init__(self, *, feat_dim: int = 32, hidden_dim: int = 128):
        super().__init__()
        self.feat_dim = feat_dim
        self.fc1 = _xavier_linear(feat_dim, hidden_dim)
        self.fc2 = _xavier_linear(hidden_dim, 1)

    def forward(self, bsp: paddle.Tensor) -> paddle.Tensor:
        """``bsp`` ``[N, feat_dim]`` (or ``[N, K, feat_dim]``) -> IoU scores ``[N]`` (or ``[N, K]``)."""
        if bsp.shape[-1] != self.feat_dim:
            raise ValueError(f"BSN PEM expects BSP features [..., {self.feat_dim}], got shape {list(bsp.shape)}")
        hidden = F.relu(0.1 * self.fc1(bsp))
        return F.sigmoid(0.1 * self.fc2(hidden)).squeeze(-1)


def pem_loss(pred: paddle.Tensor, gt_iou: paddle.Tensor, *, rng: np.random.Generator | None = None
             ) -> paddle.Tensor:
    """PEM loss of scores ``pred`` against ``gt_iou`` (same shape, e.g. ``[N]`` or ``[N, K]``):
    ``sampled_regression_loss`` with high > 0.6, medium (0.2, 0.6] kept with probability
    ``n_high / n_medium``, low [0, 0.2] with ``2 n_high / n_low``, one draw per proposal."""
    return sampled_regression_loss(pred, gt_iou, high=0.6, low=0.2, low_ratio=2.0, rng=rng)


class BSN(nn.Layer):
    """BSN's two trained parts in one model, so that one checkpoint holds both: ``tem``
    (:class:`BsnTem`) and ``pem`` (:class:`BsnPem`). ``model(features [N, feat_dim, T], "tem")``
    gives TEM's ``[N, 3, T]`` (start, end, action); ``model(bsp [..., 32], "pem")`` PEM's IoU
    scores ``[...]``. The task trains them one after the other, with PGM between them."""

    def __init__(self, *, tscale: int = 100, feat_dim: int = 400, tem_hidden_dim: int = 256, pem_feat_dim: int = 32,
                 pem_hidden_dim: int = 128):
        super().__init__()
        if tscale < 2:
            raise ValueError(f"tscale must be at least 2, got {tscale}")
        self.tscale = tscale
        self.tem = BsnTem(feat_dim=feat_dim, hidden_dim=tem_hidden_dim)
        self.pem = BsnPem(feat_dim=pem_feat_dim, hidden_dim=pem_hidden_dim)

    def forward(self, x: paddle.Tensor, part: str = "tem") -> paddle.Tensor:
        if part == "tem":
            return self.tem(x)
        if part == "pem":
            return self.pem(x)
        raise ValueError(f"part must be 'tem' or 'pem', got {part!r}")


@register_model(
    "bsn",
    task="temporal action proposals on ActivityNet 1.3 (TEM, then PGM, then PEM)",
    inputs="feat [N, 400, T] snippet features (seed T = 100) for TEM; bsp [..., 32] proposal features for PEM",
    config="bsn.yaml",
)
def bsn(**kwargs) -> BSN:
    """BSN: TEM (400 -> 256 -> 256 -> 3 temporal convolutions: start, end, action probabilities) and
    PEM (32 -> 128 -> 1 perceptron: a proposal's IoU), trained in stages with PGM between them."""
    return BSN(**kwargs)
