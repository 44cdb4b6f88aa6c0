"""TALL / CTRL (Gao et al., arXiv 1705.02101): temporal grounding of a sentence in sliding windows.

A window's visual feature (its C3D fc6 with one context window on each side, ``3 x 4096``) and a
sentence vector (skip-thought, 4800) are projected to ``semantic_size`` without bias and
L2-normalised. For every sentence ``i`` and window ``j`` the cross-modal vector is
``[v_j * s_i, v_j + s_i, v_j, s_i]`` (multiplication, addition, concatenation); a 1x1 layer of
``hidden_size`` (ReLU) and one of 3 outputs, both without bias, give ``[score, start offset, end
offset]`` for each pair: the output is ``[S, W, 3]``, row = sentence, column = window. In training
the batch pairs sentence ``i`` with its window ``i``, so the diagonal holds the positives.

As the Paddle seed, no layer has a bias (the original has biases, 21,600,163 parameters against
21,597,112 here) and the projections start N(0, 1), the 1x1 layers He-normal (fluid's default for
convolutions).

The first 1x1 layer is linear in the four parts of the cross-modal vector, so it is computed as
``(v_j * s_i) W_mul + v_j (W_add + W_v) + s_i (W_add + W_s)`` with ``W`` split into its four
blocks of rows: the same weights and the same result as on the concatenation, without building the
``[S, W, 4 * semantic_size]`` tensor (four times less memory), so all sentences of a movie can be
scored against all its windows in one call. The test-time temporal NMS belongs to the metric
(:func:`videotk.evaluators.grounding.temporal_nms`), whose threshold follows the IoU measured.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from .registry import register_model


def _linear(in_dim: int, out_dim: int, initializer: nn.initializer.Initializer) -> nn.Linear:
    return nn.Linear(in_dim, out_dim, weight_attr=paddle.ParamAttr(initializer=initializer), bias_attr=False)


class TALL(nn.Layer):
    """Cross-modal temporal regression: windows ``[W, visual_dim]`` x sentences ``[S, sentence_dim]``
    -> ``[S, W, 3]`` (alignment score, start offset, end offset; offsets in the units of the training
    targets, frames for TACoS)."""

    def __init__(self, *, visual_dim: int = 3 * 4096, sentence_dim: int = 4800, semantic_size: int = 1024,
                 hidden_size: int = 1000):
        super().__init__()
        self.semantic_size = semantic_size
        self.visual = _linear(visual_dim, semantic_size, nn.initializer.Normal(0.0, 1.0))
        self.sentence = _linear(sentence_dim, semantic_size, nn.initializer.Normal(0.0, 1.0))
        self.hidden = _linear(4 * semantic_size, hidden_size, nn.initializer.KaimingNormal())
        self.output = _linear(hidden_size, 3, nn.initializer.KaimingNormal())

    def forward(self, visual: paddle.Tensor, sentence: paddle.Tensor) -> paddle.Tensor:
        """``visual`` ``[W, visual_dim]``, ``sentence`` ``[S, sentence_dim]`` -> ``[S, W, 3]``."""
        v = F.normalize(self.visual(visual), axis=1)
        s = F.normalize(self.sentence(sentence), axis=1)
        w_mul, w_add, w_v, w_s = paddle.split(self.hidden.weight, 4, axis=0)
        product = paddle.matmul(s.unsqueeze(1) * v.unsqueeze(0), w_mul)
        hidden = product + paddle.matmul(v, w_add + w_v).unsqueeze(0) + paddle.matmul(s, w_add + w_s).unsqueeze(1)
        return self.output(F.relu(hidden))


def tall_loss(outputs: paddle.Tensor, offsets: paddle.Tensor, *, lambda_regression: float = 0.01) -> paddle.Tensor:
    """Alignment loss + ``lambda_regression`` x L1 offset loss of a training batch (CTRL's loss).

    ``outputs`` ``[B, B, 3]`` from ``B`` sentences and their ``B`` windows, ``offsets`` ``[B, 2]`` the
    true ``(start, end)`` offsets of window ``i`` to sentence ``i``'s clip. The alignment term is
    ``mean_ij w_ij log(1 + exp(m_ij S_ij))`` with ``m`` -1 on the diagonal and +1 elsewhere, ``w``
    ``1 + 1/B`` on the diagonal and ``1/B`` elsewhere; the offset term is the mean absolute error of
    the diagonal's two offsets.
    """
    batch = outputs.shape[0]
    eye = paddle.eye(batch, dtype=outputs.dtype)
    signs = 1.0 - 2.0 * eye
    weights = eye + 1.0 / batch
    align = (weights * F.softplus(signs * outputs[:, :, 0])).mean()
    diagonal = paddle.diagonal(outputs[:, :, 1:], axis1=0, axis2=1).transpose([1, 0])
    regression = (diagonal - offsets.astype(outputs.dtype)).abs().mean()
    return align + lambda_regression * regression


def _create_tall(**kwargs) -> TALL:
    return TALL(**kwargs)


@register_model(
    "tall",
    task="temporal sentence grounding (TACoS sliding windows)",
    inputs="visual [W, 3 * 4096] C3D fc6 of left context, window, right context; sentence [S, 4800] skip-thought",
    config="tall.yaml",
)
def tall(**kwargs) -> TALL:
    """TALL (CTRL-reg): 1024-d cross-modal fusion of window and sentence, 1000 hidden, score and offsets."""
    return _create_tall(**kwargs)
