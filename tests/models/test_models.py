"""Every registered model: tiny forward and backward; the registry; masks; parameter counts."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import paddle
import pytest

from videotk.models import create_model, list_models, model_info, register_model
from videotk.models.attention_lstm import AttentionLSTM


def yt8m_batch(lengths=(6, 3, 1), frames=6, rgb_dim=12, audio_dim=6, seed=0):
    """Dequantized-looking rgb/audio ``[N, frames, dim]`` and a mask of ``lengths`` real frames."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    mask = (np.arange(frames)[None, :] < np.asarray(lengths)[:, None]).astype("float32")
    rgb = rng.uniform(-2, 2, size=(n, frames, rgb_dim)).astype("float32")
    audio = rng.uniform(-2, 2, size=(n, frames, audio_dim)).astype("float32")
    return rgb, audio, mask


def tensors(*arrays):
    return tuple(paddle.to_tensor(a) for a in arrays)


class Tiny(NamedTuple):
    """Tiny ``create_model`` kwargs, a function giving ``forward``'s inputs, the first output's shape;
    ``more``: the inputs of further calls, for models whose parts are called separately (BSN)."""

    kwargs: dict
    inputs: Callable[[], tuple]
    out_shape: tuple
    more: Callable[[], list] = lambda: []


def yt8m_tiny_inputs():
    return tensors(*yt8m_batch())


def kinetics_frames(segments=3, channels=3, n=2, size=32, seed=0):
    """Normalised-looking frames ``[n, segments, channels, size, size]`` for the 2D Kinetics models."""
    rng = np.random.default_rng(seed)
    return (paddle.to_tensor(rng.standard_normal((n, segments, channels, size, size)).astype("float32")),)


def kinetics_clip(frames=4, n=2, size=32, seed=0):
    """A clip ``[n, 3, frames, size, size]`` for the 3D Kinetics models."""
    rng = np.random.default_rng(seed)
    return (paddle.to_tensor(rng.standard_normal((n, 3, frames, size, size)).astype("float32")),)


TINY: dict[str, Tiny] = {
    "attention_cluster": Tiny(
        dict(num_classes=5, rgb_dim=12, audio_dim=6, cluster_nums=(3, 2), fc1_size=8, fc2_size=10),
        yt8m_tiny_inputs, (3, 5)),
    "attention_lstm": Tiny(
        dict(num_classes=5, rgb_dim=12, audio_dim=6, embedding_size=8, lstm_size=6, fc1_size=16, fc2_size=10),
        yt8m_tiny_inputs, (3, 5)),
    "nextvlad": Tiny(
        dict(num_classes=5, rgb_dim=12, audio_dim=6, cluster_size=4, hidden_size=16, groups=2, expansion=2,
             gating_reduction=4),
        yt8m_tiny_inputs, (3, 5)),
    "tsn": Tiny(dict(num_classes=5, depth=18, base_width=8, seg_num=3), lambda: kinetics_frames(3), (2, 5)),
    "tsm": Tiny(dict(num_classes=5, depth=18, base_width=8, seg_num=4), lambda: kinetics_frames(4), (2, 5)),
    "stnet": Tiny(dict(num_classes=5, depth=18, base_width=8, seg_num=3, seglen=2),
                  lambda: kinetics_frames(3, channels=6), (2, 5)),
    "non_local": Tiny(dict(num_classes=5, depth=18, base_width=8, arch="i3d"), lambda: kinetics_clip(4), (2, 5)),
    "bmn": Tiny(dict(tscale=8, dscale=8, feat_dim=8, num_sample=4, num_sample_perbin=2, hidden_dim_1d=8,
                     hidden_dim_2d=8, hidden_dim_3d=8), lambda: (paddle.randn([2, 8, 8]),), (2, 2, 8, 8)),
    "bsn": Tiny(dict(tscale=10, feat_dim=8, tem_hidden_dim=8, pem_hidden_dim=8),
                lambda: (paddle.randn([2, 8, 10]), "tem"), (2, 3, 10),
                lambda: [(paddle.randn([6, 32]), "pem")]),
    "ctcn": Tiny(dict(num_classes=4, concept_size=10, img_size=64, num_levels=5, base_width=8, fpn_dim=16, loc_dim=8,
                      cls_dim=16), lambda: (paddle.randn([2, 1, 64, 10]),), (2, 217, 2)),
    "ets": Tiny(dict(vocab_size=7, feature_dim=6, fc_dim=8, encoder_size=6, decoder_size=8, word_emb_dim=5),
                lambda: (paddle.randn([2, 5, 6]), paddle.to_tensor(np.array([[1] * 5, [1, 1, 1, 0, 0]], "float32")),
                         paddle.to_tensor(np.array([[0, 3, 4], [0, 5, 6]]))), (2, 3, 7)),
    "tall": Tiny(dict(visual_dim=12, sentence_dim=10, semantic_size=8, hidden_size=16),
                 lambda: (paddle.randn([3, 12]), paddle.randn([3, 10])), (3, 3, 3)),
}

YT8M_MODELS = ["attention_cluster", "attention_lstm", "nextvlad"]


def float_outputs(out) -> list:
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [o for o in out if isinstance(o, paddle.Tensor) and o.dtype in (paddle.float32, paddle.float64)]


@pytest.mark.parametrize("name", list_models())
def test_tiny_forward_backward(name):
    assert name in TINY, f"model {name!r} is registered but has no tiny settings in TINY"
    tiny = TINY[name]
    paddle.seed(0)
    model = create_model(name, **tiny.kwargs)
    model.train()
    outputs = float_outputs(model(*tiny.inputs()))
    assert tuple(outputs[0].shape) == tiny.out_shape
    for inputs in tiny.more():
        outputs += float_outputs(model(*inputs))
    for out in outputs:
        assert np.isfinite(out.numpy()).all()
    loss = sum((out * paddle.randn(out.shape, dtype=out.dtype)).sum() for out in outputs)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    for n, p in trainable:
        assert np.isfinite(p.grad.numpy()).all(), n


def test_names_are_normalised():
    assert model_info("Attention-LSTM")["name"] == "attention_lstm"
    assert model_info("AttentionLSTM") == model_info("attention_lstm")
    assert model_info("NEXTVLAD")["config"] == "nextvlad.yaml"
    assert isinstance(create_model("Attention-LSTM", **TINY["attention_lstm"].kwargs), AttentionLSTM)
    assert list_models() == sorted(list_models())


def test_model_info_fields():
    for name in list_models():
        info = model_info(name)
        assert set(info) == {"name", "task", "inputs", "config", "description"}
        assert info["task"] and info["inputs"] and info["config"].endswith(".yaml")


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="attention_lstm"):
        create_model("atention-lstm")
    with pytest.raises(ValueError, match="nextvlad"):
        model_info("next_vlat")
    with pytest.raises(ValueError, match="registered models: .*attention_cluster"):
        create_model("resnet_zzz")


def test_clashing_registration_is_refused():
    with pytest.raises(ValueError, match="clashes"):
        register_model("Attention-Cluster", task="x", inputs="x")(lambda **kwargs: None)


def padded(rgb, audio, mask, frames, seed=1):
    """The same videos padded to ``frames`` with random features behind a zero mask."""
    rng = np.random.default_rng(seed)
    n, extra = mask.shape[0], frames - mask.shape[1]
    rgb = np.concatenate([rgb, rng.uniform(-5, 5, (n, extra, rgb.shape[2])).astype("float32")], axis=1)
    audio = np.concatenate([audio, rng.uniform(-5, 5, (n, extra, audio.shape[2])).astype("float32")], axis=1)
    return rgb, audio, np.concatenate([mask, np.zeros((n, extra), "float32")], axis=1)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", YT8M_MODELS)
def test_padding_never_enters(name, train):
    paddle.seed(0)
    model = create_model(name, **{**TINY[name].kwargs, "drop_rate": 0.0})
    model.train(train)
    short = yt8m_batch(lengths=(20, 13, 7, 1), frames=20, seed=2)
    long = padded(*short, frames=40)
    assert np.allclose(model(*tensors(*short)).numpy(), model(*tensors(*long)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", YT8M_MODELS)
def test_no_mask_means_all_frames(name):
    paddle.seed(0)
    model = create_model(name, **TINY[name].kwargs)
    model.eval()
    rgb, audio, _ = tensors(*yt8m_batch(lengths=(6, 6, 6)))
    ones = paddle.ones(rgb.shape[:2])
    assert np.allclose(model(rgb, audio).numpy(), model(rgb, audio, ones).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", YT8M_MODELS)
@pytest.mark.parametrize("num_classes", [20, 3862])
def test_outputs_start_near_the_prior_of_a_class(name, num_classes):
    """Sigmoid outputs start around 1 / num_classes, not 0.5, whatever the number of classes."""
    paddle.seed(0)
    model = create_model(name, **{**TINY[name].kwargs, "num_classes": num_classes})
    model.eval()
    probabilities = paddle.nn.functional.sigmoid(model(*yt8m_tiny_inputs())).numpy()
    assert 0.5 / num_classes < np.median(probabilities) < 2.0 / num_classes
    assert probabilities.max() < 0.5


def test_attention_lstm_output_weights_do_not_shrink_with_the_number_of_classes():
    kwargs = TINY["attention_lstm"].kwargs
    few, many = (create_model("attention_lstm", **{**kwargs, "num_classes": n}).logits.weight.numpy().std()
                 for n in (5, 3862))
    assert many == pytest.approx(few, rel=0.2)


def attention_cluster_params(rgb=1024, audio=128, units=(32, 32), fc1=1024, fc2=4096, classes=3862):
    streams = sum(f * c + c + 2 * c for f, c in zip((rgb, audio), units))
    pooled = rgb * units[0] + audio * units[1]
    return streams + pooled * fc1 + fc1 + fc1 * fc2 + fc2 + fc2 * classes + classes


def attention_lstm_params(rgb=1024, audio=128, embed=512, hidden=1024, fc1=8192, fc2=4096, classes=3862):
    lstm_direction = 4 * hidden * embed + 4 * hidden * hidden + 2 * 4 * hidden
    streams = sum(f * embed + embed + 2 * lstm_direction + 2 * hidden + 1 for f in (rgb, audio))
    return streams + 4 * hidden * fc1 + fc1 + fc1 * fc2 + fc2 + fc2 * classes + classes


def nextvlad_params(rgb=1024, audio=128, clusters=128, hidden=2048, groups=8, expansion=2, reduction=8,
                    classes=3862):
    def stream(f):
        wide = expansion * f
        group_dim = wide // groups
        return (f * wide + wide + wide * groups + groups + wide * groups * clusters + 2 * groups * clusters
                + clusters * group_dim + 2 * clusters * group_dim)

    vlad = clusters * expansion * (rgb + audio) // groups
    squeeze = hidden // reduction
    head = vlad * hidden + 2 * hidden + hidden * squeeze + 2 * squeeze + squeeze * hidden + hidden * classes + classes
    return stream(rgb) + stream(audio) + head


EXPECTED_PARAMS = {
    "attention_cluster": attention_cluster_params,
    "attention_lstm": attention_lstm_params,
    "nextvlad": nextvlad_params,
}


@pytest.mark.parametrize("name", YT8M_MODELS)
def test_parameter_count_at_seed_settings(name):
    model = create_model(name)
    count = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    print(f"{name}: {count:,} trainable parameters")
    assert count == EXPECTED_PARAMS[name]()
