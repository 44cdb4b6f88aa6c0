"""Layers shared by the frame-feature models: He-initialised linear layers, the prior-probability
output bias and masked attention pooling.

Masks are float tensors ``[N, T]`` with 1 for real frames and 0 for padding.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import nn

_NEG_INF = -1e9


def msra_linear(in_dim: int, out_dim: int, bias: bool | nn.initializer.Initializer = True) -> nn.Linear:
    """``nn.Linear`` with He-normal weights (std ``sqrt(2 / in_dim)``).

    ``bias``: ``False`` for no bias, ``True`` for zeros, or an initializer.
    """
    if bias is True:
        bias = nn.initializer.Constant(0.0)
    bias_attr = False if bias is False else paddle.ParamAttr(initializer=bias)
    return nn.Linear(in_dim, out_dim, weight_attr=paddle.ParamAttr(initializer=nn.initializer.KaimingNormal()),
                     bias_attr=bias_attr)


def prior_bias(num_classes: int) -> nn.initializer.Constant:
    """Initializer of a sigmoid classifier's output bias ``[num_classes]``: ``log(p / (1 - p))`` with
    ``p = 1 / num_classes``, so every class starts out predicted as rare instead of at 0.5.

    With a zero bias, the loss over many rare classes starts dominated by the negatives (about
    ``0.69 * num_classes`` per video, 2677 with 3862 classes) and the quickest way down is to make
    every logit negative through the hidden layers, which saturates them and wipes out what tells
    the videos apart. Starting at the prior leaves the gradient to what separates the classes
    (the prior-probability initialisation of Lin et al., arXiv 1708.02002).
    """
    p = 1.0 / num_classes
    return nn.initializer.Constant(math.log(p / (1.0 - p)))


def frame_mask(x: paddle.Tensor, mask: paddle.Tensor | None) -> paddle.Tensor:
    """``mask`` ``[N, T]``, or all ones like the first two axes of ``x`` ``[N, T, ...]`` when it is None."""
    if mask is not None:
        return mask.astype(x.dtype)
    return paddle.ones(x.shape[:2], dtype=x.dtype)


def masked_softmax(scores: paddle.Tensor, mask: paddle.Tensor, axis: int) -> paddle.Tensor:
    """Softmax of ``scores`` along ``axis`` in which positions where ``mask`` is 0 get weight 0.

    ``mask`` broadcasts against ``scores``. A slice with no real position gets uniform weights.
    """
    return F.softmax(paddle.where(mask > 0, scores, paddle.full_like(scores, _NEG_INF)), axis=axis)


def attention_pool(x: paddle.Tensor, scores: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """Weighted sums of frames, one per attention unit: ``[N, T, F]``, scores ``[N, T, C]`` -> ``[N, C, F]``.

    The weights are the softmax of ``scores`` over the real frames of ``mask`` ``[N, T]``.
    """
    weights = masked_softmax(scores, mask.unsqueeze(-1), axis=1)
    return paddle.matmul(weights, x, transpose_x=True)
