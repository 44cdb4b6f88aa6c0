"""ETS (after Yao et al., "Describing videos by exploiting temporal structure", arXiv 1502.08029):
captioning of a video segment from frame features, as Paddle's seed builds it.

Encoder: a tanh projection of each frame (2048 -> 1024), a bidirectional GRU (512 each way) over
the real frames, a softmax-weighted sum of its outputs over time that starts the decoder
(``tanh(fc)``), and a projection of its outputs for the attention. Decoder: a GRU (512) that takes
the word embedding and an attention context over the encoder outputs at each step, then a linear
layer to the vocabulary. Weights Xavier-uniform (fluid's default), biases zero.

The GRUs are fluid's (``dynamic_gru`` / ``gru_unit``, ``origin_mode=False``) in :class:`LegacyGRUCell`:
one bias per gate (Paddle 3's ``nn.GRU`` has two) and ``h' = (1 - u) h + u tanh(W_c x + U_c (r h) + b_c)``,
so the trainable parameters are 11,279,360 + 1,025 x V at the seed's sizes, V the vocabulary size.

Attention: the seed scores frame ``t`` by ``fc(enc_proj_t + fc(h))`` with no tanh in between. The
decoder-state term is the same for every frame and cancels in the softmax, so the attention is
static: the same context at every step, and the decoder-state projection gets zero gradient. This
port keeps that by default (``attention_tanh=False``, the seed's numbers); ``attention_tanh=True``
puts the tanh in, which is Bahdanau's additive attention, with the same parameters.

Tokens: ``bos`` (``<s>``) is 0 and ``eos`` (``<e>``) is 1 as in the seed's vocabulary, which starts
``<s>``, ``<e>``, ``<unk>``. Training is teacher-forced on ``[bos] + words`` against ``words + [eos]``;
the loss averages the cross-entropy over all real tokens of the batch (long sentences weigh more),
without label smoothing, as the seed. Decoding (:meth:`ETS.greedy`, :meth:`ETS.beam_search`, beam 3
and 80 steps in the seed) returns the generated ids after ``bos``, ending with ``eos`` when the
model ended the sentence, else cut at ``max_length``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from .layers import frame_mask, masked_softmax
from .registry import register_model

BOS, EOS, UNK = 0, 1, 2


def _xavier() -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.XavierUniform())


def _linear(in_dim: int, out_dim: int, bias: bool = False) -> nn.Linear:
    """``nn.Linear`` with Xavier-uniform weights and a zero bias or none."""
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False
    return nn.Linear(in_dim, out_dim, weight_attr=_xavier(), bias_attr=bias_attr)


class LegacyGRUCell(nn.Layer):
    """fluid's GRU step on an input already projected to ``[N, 3 * hidden]`` (gates ``u``, ``r``, candidate):

    ``u = sigmoid(x_u + h U_u + b_u)``, ``r = sigmoid(x_r + h U_r + b_r)``,
    ``c = tanh(x_c + (r * h) U_c + b_c)``, ``h' = (1 - u) * h + u * c``.

    fluid keeps ``U`` as one ``[hidden, 3 * hidden]`` weight and one bias ``[1, 3 * hidden]``; here they
    are split by columns into the gates' part (``[U_u U_r]``, ``[b_u b_r]``) and the candidate's
    (``U_c``, ``b_c``): the same parameters, and slicing a parameter at every time step would make the
    backward pass about eight times slower.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        zeros = nn.initializer.Constant(0.0)
        self.gate_weight = self.create_parameter([hidden_size, 2 * hidden_size], attr=_xavier())
        self.gate_bias = self.create_parameter([2 * hidden_size], is_bias=True, default_initializer=zeros)
        self.candidate_weight = self.create_parameter([hidden_size, hidden_size], attr=_xavier())
        self.candidate_bias = self.create_parameter([hidden_size], is_bias=True, default_initializer=zeros)

    def forward(self, x: paddle.Tensor, h: paddle.Tensor) -> paddle.Tensor:
        """``x`` ``[N, 3 * hidden]`` (projected input), ``h`` ``[N, hidden]`` -> ``h'`` ``[N, hidden]``."""
        d = self.hidden_size
        gates = F.sigmoid(x[:, : 2 * d] + paddle.matmul(h, self.gate_weight) + self.gate_bias)
        u, r = gates[:, :d], gates[:, d:]
        c = paddle.tanh(x[:, 2 * d:] + paddle.matmul(r * h, self.candidate_weight) + self.candidate_bias)
        return h + u * (c - h)


class LegacyGRU(nn.Layer):
    """One direction of fluid's ``fc`` + ``dynamic_gru``: ``[N, T, in_dim]`` -> ``[N, T, hidden]``, over the
    real frames only (``mask`` ``[N, T]``, real frames first). Running backwards, each video starts at
    its last real frame; running forwards, the state is held over the padding."""

    def __init__(self, in_dim: int, hidden_size: int, reverse: bool = False):
        super().__init__()
        self.reverse = reverse
        self.project = _linear(in_dim, 3 * hidden_size)
        self.cell = LegacyGRUCell(hidden_size)

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        inputs, reals = paddle.unbind(self.project(x), axis=1), paddle.unbind(mask.unsqueeze(-1), axis=1)
        h = paddle.zeros([x.shape[0], self.cell.hidden_size], dtype=x.dtype)
        steps = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        outputs = {}
        for t in steps:
            h = reals[t] * self.cell(inputs[t], h) + (1.0 - reals[t]) * h
            outputs[t] = h
        return paddle.stack([outputs[t] for t in range(x.shape[1])], axis=1)


class Encoded(NamedTuple):
    """The encoder's outputs for ``N`` segments: what every decoder step attends to."""

    sequence: paddle.Tensor  # [N, T, 2 * encoder_size] bi-GRU outputs
    projected: paddle.Tensor  # [N, T, decoder_size] their projection for the attention
    mask: paddle.Tensor  # [N, T] 1 = real frame
    state: paddle.Tensor  # [N, decoder_size] the decoder's first state

    def rows(self, index: paddle.Tensor) -> Encoded:
        """The segments at ``index`` ``[B]`` (repeated for a beam)."""
        return Encoded(*(paddle.gather(part, index) for part in self))


class ETS(nn.Layer):
    """Bi-GRU encoder with attention pooling and a GRU decoder with attention: segment features ->
    caption logits."""

    def __init__(self, *, vocab_size: int, feature_dim: int = 2048, fc_dim: int = 1024, encoder_size: int = 512,
                 decoder_size: int = 512, word_emb_dim: int = 512, attention_tanh: bool = False):
        super().__init__()
        self.vocab_size, self.attention_tanh = vocab_size, attention_tanh
        context = 2 * encoder_size
        self.input_fc = _linear(feature_dim, fc_dim, bias=True)
        self.forward_gru = LegacyGRU(fc_dim, encoder_size)
        self.backward_gru = LegacyGRU(fc_dim, encoder_size, reverse=True)
        self.pool_score = _linear(context, 1)
        self.enc_proj = _linear(context, decoder_size)
        self.decoder_boot = _linear(context, decoder_size)
        self.embedding = nn.Embedding(vocab_size, word_emb_dim, weight_attr=_xavier())
        self.state_proj = _linear(decoder_size, decoder_size)
        self.attention_score = _linear(decoder_size, 1)
        self.step_input = _linear(word_emb_dim + context, 3 * decoder_size)
        self.decoder_cell = LegacyGRUCell(decoder_size)
        self.output = _linear(decoder_size, vocab_size, bias=True)

    def encode(self, features: paddle.Tensor, mask: paddle.Tensor | None = None) -> Encoded:
        """``features`` ``[N, T, feature_dim]``, ``mask`` ``[N, T]`` (real frames first) -> :class:`Encoded`."""
        mask = frame_mask(features, mask)
        x = paddle.tanh(self.input_fc(features))
        sequence = paddle.concat([self.forward_gru(x, mask), self.backward_gru(x, mask)], axis=-1)
        weights = masked_softmax(self.pool_score(sequence), mask.unsqueeze(-1), axis=1)
        pooled = (weights * sequence).sum(axis=1)
        return Encoded(sequence, self.enc_proj(sequence), mask, paddle.tanh(self.decoder_boot(pooled)))

    def step(self, tokens: paddle.Tensor, state: paddle.Tensor, encoded: Encoded) -> tuple[paddle.Tensor, paddle.Tensor]:
        """One decoder step: ``tokens`` ``[B]`` int64, ``state`` ``[B, decoder_size]`` -> (logits ``[B, V]``,
        the next state)."""
        scores = encoded.projected + self.state_proj(state).unsqueeze(1)
        if self.attention_tanh:
            scores = paddle.tanh(scores)
        weights = masked_softmax(self.attention_score(scores), encoded.mask.unsqueeze(-1), axis=1)
        context = (weights * encoded.sequence).sum(axis=1)
        inputs = self.step_input(paddle.concat([self.embedding(tokens), context], axis=-1))
        state = self.decoder_cell(inputs, state)
        return self.output(state), state

    def forward(self, features: paddle.Tensor, mask: paddle.Tensor | None, captions: paddle.Tensor) -> paddle.Tensor:
        """Teacher forcing: ``features`` ``[N, T, feature_dim]``, ``mask`` ``[N, T]`` or None (all real),
        ``captions`` ``[N, L]`` int64 (``bos`` then the words, padded) -> logits ``[N, L, V]`` of the
        next token at each position."""
        encoded = self.encode(features, mask)
        state, logits = encoded.state, []
        for t in range(captions.shape[1]):
            step_logits, state = self.step(captions[:, t], state, encoded)
            logits.append(step_logits)
        return paddle.stack(logits, axis=1)

    @paddle.no_grad()
    def greedy(self, features: paddle.Tensor, mask: paddle.Tensor | None = None, *, max_length: int = 80,
               bos: int = BOS, eos: int = EOS) -> list[list[int]]:
        """The most probable next token at each step, per segment: ``N`` lists of ids (see the module)."""
        encoded = self.encode(features, mask)
        n = features.shape[0]
        tokens, state = paddle.full([n], bos, dtype="int64"), encoded.state
        generated, done = [], np.zeros(n, bool)
        for _ in range(max_length):
            logits, state = self.step(tokens, state, encoded)
            best = F.log_softmax(logits, axis=-1).numpy().argmax(axis=-1)
            generated.append(best)
            done |= best == eos
            if done.all():
                break
            tokens = paddle.to_tensor(best, dtype="int64")
        return [_until_eos(row, eos) for row in np.stack(generated, axis=1)]

    @paddle.no_grad()
    def beam_search(self, features: paddle.Tensor, mask: paddle.Tensor | None = None, *, beam: int = 3,
                    max_length: int = 80, bos: int = BOS, eos: int = EOS) -> list[list[int]]:
        """Beam search as fluid's ``beam_search`` (no length penalty): each step keeps the ``beam`` best
        continuations of all hypotheses by summed log-probability; an ended hypothesis keeps its place
        and score; a segment is done when all ``beam`` have ended. Returns the best hypothesis of each
        of the ``N`` segments (see the module)."""
        if beam > self.vocab_size:
            raise ValueError(f"beam {beam} is larger than the vocabulary ({self.vocab_size} tokens)")
        n = features.shape[0]
        encoded = self.encode(features, mask).rows(paddle.arange(n).repeat_interleave(beam))
        tokens, state = paddle.full([n * beam], bos, dtype="int64"), encoded.state
        scores = np.full((n, beam), -np.inf)
        scores[:, 0] = 0.0
        ended = np.zeros((n, beam), bool)
        history = np.zeros((n, beam, 0), np.int64)
        for _ in range(max_length):
            logits, state = self.step(tokens, state, encoded)
            logp = F.log_softmax(logits, axis=-1).numpy().astype(np.float64).reshape(n, beam, -1)
            logp[ended] = -np.inf
            logp[ended, eos] = 0.0
            total = (scores[:, :, None] + logp).reshape(n, -1)
            best = _top_k(total, beam)
            parent, token = np.divmod(best, self.vocab_size)
            scores = np.take_along_axis(total, best, axis=1)
            history = np.concatenate([np.take_along_axis(history, parent[:, :, None], axis=1), token[:, :, None]], 2)
            ended = np.take_along_axis(ended, parent, axis=1) | (token == eos)
            rows = (np.arange(n)[:, None] * beam + parent).reshape(-1)
            state = paddle.gather(state, paddle.to_tensor(rows))
            tokens = paddle.to_tensor(token.reshape(-1), dtype="int64")
            if ended.all():
                break
        winners = scores.argmax(axis=1)
        return [_until_eos(history[i, winners[i]], eos) for i in range(n)]


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices ``[N, k]`` of the ``k`` largest of each row of ``scores`` ``[N, M]``, best first,
    the lower index first among equal scores."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _until_eos(ids: np.ndarray, eos: int) -> list[int]:
    """``ids`` up to and including the first ``eos`` (all of them when there is none)."""
    ends = np.flatnonzero(ids == eos)
    return ids[: ends[0] + 1].tolist() if ends.size else ids.tolist()


def caption_loss(logits: paddle.Tensor, targets: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """Cross-entropy averaged over all real tokens of the batch: ``logits`` ``[N, L, V]``, ``targets``
    ``[N, L]`` int64 (the words then ``eos``), ``mask`` ``[N, L]`` (1 = real token)."""
    losses = F.cross_entropy(logits, targets.unsqueeze(-1), reduction="none").squeeze(-1)
    mask = mask.astype(losses.dtype)
    return (losses * mask).sum() / mask.sum().clip(min=1.0)


def _create_ets(**kwargs) -> ETS:
    return ETS(**kwargs)


@register_model(
    "ets",
    task="video captioning of ground-truth segments (ActivityNet Captions frame features)",
    inputs="features [N, T, 2048] ResNet-152 at 5 fps, mask [N, T] with real frames first; captions [N, L] int64",
    config="ets.yaml",
)
def ets(**kwargs) -> ETS:
    """ETS: bi-GRU 512 encoder, GRU 512 decoder with attention, 512-d word embeddings; vocab_size from the data."""
    return _create_ets(**kwargs)
