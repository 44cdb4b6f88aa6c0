"""ETS and TALL: parameter counts at the seed's sizes, the fluid GRU cell, shapes, losses that fall on a
fixed tiny batch, decoding, and TALL's factored cross-modal layer against the concatenation."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from videotk.models import count_parameters, create_model
from videotk.models.ets import EOS, LegacyGRUCell, caption_loss
from videotk.models.tall import tall_loss

ETS_TINY = {"feature_dim": 6, "fc_dim": 8, "encoder_size": 6, "decoder_size": 8, "word_emb_dim": 5}
TALL_TINY = {"visual_dim": 12, "sentence_dim": 10, "semantic_size": 8, "hidden_size": 16}


def ets_model(vocab_size=12, seed=0, **kwargs):
    paddle.seed(seed)
    return create_model("ets", vocab_size=vocab_size, **{**ETS_TINY, **kwargs})


def caption_batch(seed=0, lengths=(7, 5, 3, 6), frames=7, vocab_size=12, words=4):
    """Features ``[N, frames, 6]`` with a mask of ``lengths`` frames, captions ``[bos] + words`` and
    targets ``words + [eos]`` (distinct per segment, ids 3 .. vocab_size - 1)."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    mask = (np.arange(frames)[None] < np.asarray(lengths)[:, None]).astype("float32")
    features = rng.standard_normal((n, frames, 6)).astype("float32")
    ids = rng.integers(3, vocab_size, size=(n, words))
    captions = np.concatenate([np.zeros((n, 1), np.int64), ids], axis=1)
    targets = np.concatenate([ids, np.full((n, 1), EOS)], axis=1)
    return [paddle.to_tensor(a) for a in (features, mask, captions, targets)]


@pytest.mark.parametrize("vocab_size", [1000, 3000])
def test_ets_parameters_at_the_seed_sizes(vocab_size):
    assert count_parameters(create_model("ets", vocab_size=vocab_size)) == 11_279_360 + 1_025 * vocab_size


def test_tall_parameters_at_the_seed_sizes():
    assert count_parameters(create_model("tall")) == 21_597_112


def test_legacy_gru_cell_is_fluids_formula():
    paddle.seed(1)
    cell = LegacyGRUCell(3)
    b = np.linspace(-1, 1, 9).astype("float32")
    cell.gate_bias.set_value(paddle.to_tensor(b[:6]))
    cell.candidate_bias.set_value(paddle.to_tensor(b[6:]))
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 9)).astype("float32"), rng.standard_normal((2, 3)).astype("float32")
    w = np.concatenate([cell.gate_weight.numpy(), cell.candidate_weight.numpy()], axis=1)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    u = sigmoid(x[:, :3] + h @ w[:, :3] + b[:3])
    r = sigmoid(x[:, 3:6] + h @ w[:, 3:6] + b[3:6])
    c = np.tanh(x[:, 6:] + (r * h) @ w[:, 6:] + b[6:])
    expected = (1 - u) * h + u * c
    assert np.allclose(cell(paddle.to_tensor(x), paddle.to_tensor(h)).numpy(), expected, atol=1e-6)
    assert count_parameters(cell) == 3 * 9 + 9


def test_ets_logits_shape_and_padding_never_enters():
    model = ets_model()
    model.eval()
    features, mask, captions, _ = caption_batch()
    logits = model(features, mask, captions)
    assert logits.shape == [4, 5, 12]
    noise = paddle.to_tensor(np.random.default_rng(3).uniform(-5, 5, (4, 4, 6)).astype("float32"))
    longer = paddle.concat([features, noise], axis=1)
    longer_mask = paddle.concat([mask, paddle.zeros([4, 4])], axis=1)
    assert np.allclose(model(longer, longer_mask, captions).numpy(), logits.numpy(), atol=1e-5)


def test_caption_loss_counts_real_tokens_only():
    logits = paddle.zeros([2, 3, 5])
    targets = paddle.to_tensor(np.array([[1, 2, 3], [4, 0, 0]]))
    mask = paddle.to_tensor(np.array([[1, 1, 1], [1, 0, 0]], "float32"))
    assert float(caption_loss(logits, targets, mask)) == pytest.approx(np.log(5), rel=1e-6)
    logits[1, 1:] = paddle.to_tensor(np.array([[9.0, -9, -9, -9, -9]] * 2, "float32"))
    assert float(caption_loss(logits, targets, mask)) == pytest.approx(np.log(5), rel=1e-6)


@pytest.mark.parametrize("attention_tanh", [False, True], ids=["seed", "tanh"])
def test_decoder_state_reaches_the_attention_only_through_tanh(attention_tanh):
    """The seed's attention without tanh is static: the decoder-state projection gets no gradient."""
    model = ets_model(attention_tanh=attention_tanh)
    features, mask, captions, targets = caption_batch()
    caption_loss(model(features, mask, captions), targets, paddle.ones(targets.shape)).backward()
    largest = float(model.state_proj.weight.grad.abs().max())
    assert (largest < 1e-6) != attention_tanh, largest


def train_steps(model, loss_fn, steps, lr=0.01):
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    return losses


@pytest.fixture(scope="module")
def trained_ets():
    """A tiny ETS fitted to four captions, with its batch and the losses of training."""
    model = ets_model()
    features, mask, captions, targets = batch = caption_batch()
    real = paddle.ones(targets.shape)
    losses = train_steps(model, lambda: caption_loss(model(features, mask, captions), targets, real), 200)
    model.eval()
    return model, batch, losses


def test_ets_loss_falls_on_a_fixed_batch(trained_ets):
    _, _, losses = trained_ets
    assert losses[-1] < 0.05 * losses[0]


def test_decoding_reproduces_the_fitted_captions(trained_ets):
    model, (features, mask, _, targets), _ = trained_ets
    expected = targets.numpy().tolist()
    assert model.greedy(features, mask) == expected
    assert model.beam_search(features, mask) == expected


@pytest.mark.parametrize("max_length", [1, 3, 80])
def test_decodes_end_at_eos_or_max_length(max_length):
    model = ets_model(seed=4)
    model.eval()
    features, mask, _, _ = caption_batch(seed=5)
    for decode in (model.greedy(features, mask, max_length=max_length),
                   model.beam_search(features, mask, max_length=max_length)):
        assert len(decode) == 4
        for ids in decode:
            assert 1 <= len(ids) <= max_length
            assert EOS not in ids[:-1]
            assert ids[-1] == EOS or len(ids) == max_length


def test_beam_of_one_is_greedy():
    model = ets_model(seed=2)
    model.eval()
    features, mask, _, _ = caption_batch(seed=6)
    assert model.beam_search(features, mask, beam=1, max_length=12) == model.greedy(features, mask, max_length=12)


def test_beam_larger_than_the_vocabulary_is_refused():
    model = ets_model(vocab_size=3)
    features, mask, _, _ = caption_batch()
    with pytest.raises(ValueError, match="beam 4 is larger than the vocabulary"):
        model.beam_search(features, mask, beam=4)


def tall_batch(sentences=5, windows=5, seed=0):
    rng = np.random.default_rng(seed)
    visual = rng.standard_normal((windows, 12)).astype("float32")
    sentence = rng.standard_normal((sentences, 10)).astype("float32")
    offsets = rng.uniform(-2, 2, (min(sentences, windows), 2)).astype("float32")
    return [paddle.to_tensor(a) for a in (visual, sentence, offsets)]


def test_tall_matches_the_concatenated_cross_modal_vector():
    paddle.seed(0)
    model = create_model("tall", **TALL_TINY)
    visual, sentence, _ = tall_batch(sentences=3, windows=4)
    out = model(visual, sentence)
    assert out.shape == [3, 4, 3]
    v = F.normalize(model.visual(visual), axis=1).numpy()
    s = F.normalize(model.sentence(sentence), axis=1).numpy()
    vv, ss = np.broadcast_to(v[None], (3, 4, 8)), np.broadcast_to(s[:, None], (3, 4, 8))
    cross = np.concatenate([vv * ss, vv + ss, vv, ss], axis=-1)
    expected = np.maximum(cross @ model.hidden.weight.numpy(), 0) @ model.output.weight.numpy()
    assert np.allclose(out.numpy(), expected, atol=1e-5)


def test_tall_loss_by_hand():
    outputs = paddle.zeros([4, 4, 3])
    offsets = paddle.to_tensor(np.array([[1, -1], [2, 0], [0, 0], [-3, 1]], "float32"))
    # zero scores: mean(w) * log 2 = (2 / B) log 2; L1 of the diagonal against the offsets: 8 / 8
    assert float(tall_loss(outputs, offsets)) == pytest.approx(0.5 * np.log(2) + 0.01 * 1.0, rel=1e-6)
    outputs[:, :, 0] = paddle.to_tensor(np.where(np.eye(4), 50.0, -50.0).astype("float32"))
    outputs[:, :, 1:] = paddle.to_tensor(np.broadcast_to(offsets.numpy()[:, None], (4, 4, 2)).copy())
    assert float(tall_loss(outputs, offsets)) == pytest.approx(0.0, abs=1e-6)


def test_tall_loss_falls_on_a_fixed_batch():
    paddle.seed(0)
    model = create_model("tall", **TALL_TINY)
    visual, sentence, offsets = tall_batch(sentences=6, windows=6)
    losses = train_steps(model, lambda: tall_loss(model(visual, sentence), offsets), 100)
    assert losses[-1] < 0.5 * losses[0]
    scores = model(visual, sentence).numpy()[:, :, 0]
    assert (scores.argmax(axis=1) == np.arange(6)).all()
