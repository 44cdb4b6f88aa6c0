"""The Kinetics models: temporal shift, non-local blocks, super-images, ImageNet initialisation, sizes."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from paddle.vision.models import resnet18, resnet50

from videotk.models import count_parameters, create_model, load_pretrained, model_info
from videotk.models.non_local import NonLocalBlock, NonLocalNet, nonlocal_positions
from videotk.models.resnet import BottleneckBlock, ResNet, ResNet3D
from videotk.models.stnet import StNet, TemporalModeling, super_images
from videotk.models.tsm import TemporalShift, temporal_shift
from videotk.models.tsn import TSN

TINY = dict(num_classes=5, depth=18, base_width=8)


def randn(*shape, seed=0):
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def test_registered_names():
    assert model_info("Non-local")["name"] == model_info("nonlocal")["name"] == "non_local"
    assert model_info("non_local")["config"] == "non_local.yaml"
    for name in ("tsn", "tsm", "stnet", "non_local"):
        assert model_info(name)["task"] == "video classification (Kinetics-400 frames)"


# --- TSM ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [16, 64])
def test_temporal_shift_moves_an_eighth_of_the_channels_each_way(channels):
    n, t = 2, 4
    video = np.arange(n)[:, None, None] * 10000 + (np.arange(t)[None, :, None] + 1) * 1000 + np.arange(channels)
    x = paddle.to_tensor(np.repeat(video.reshape(n * t, channels, 1, 1), 2, axis=2).astype("float32"))
    out = temporal_shift(x, t).numpy()[:, :, 0, 0].reshape(n, t, channels)
    fold = channels // 8
    expected = video.copy()
    expected[:, :, :2 * fold] = 0
    expected[:, 1:, :fold] = video[:, :-1, :fold]                       # from the previous segment
    expected[:, :-1, fold:2 * fold] = video[:, 1:, fold:2 * fold]       # from the next segment
    assert np.array_equal(out, expected)
    assert (out != video).any(axis=(0, 1)).sum() == channels // 4


def test_shift_is_on_the_residual_branch_only():
    paddle.seed(0)
    block = BottleneckBlock(16, 4, temporal=lambda c: TemporalShift(2), zero_init_residual=True)
    block.eval()
    x = randn(4, 16, 3, 3)
    assert np.array_equal(block(x).numpy(), paddle.nn.functional.relu(x).numpy())  # branch 0: shortcut unshifted
    block.bn3.weight.set_value(paddle.ones([16]))
    expected = paddle.nn.functional.relu(block.branch(temporal_shift(x, 2)) + x)
    assert np.allclose(block(x).numpy(), expected.numpy(), atol=1e-6)


def test_tsm_is_tsn_with_shifts_and_no_new_parameters():
    tsm, tsn = create_model("tsm", **TINY, seg_num=4), create_model("tsn", **TINY)
    assert {k: v.shape for k, v in tsm.state_dict().items()} == {k: v.shape for k, v in tsn.state_dict().items()}
    blocks = [block for stage in tsm.backbone.stages() for block in stage]
    assert blocks and all(isinstance(block.temporal, TemporalShift) for block in blocks)
    with pytest.raises(ValueError, match="seg_num=4"):
        tsm(randn(1, 3, 3, 32, 32))


def test_tsn_takes_any_number_of_segments():
    model = create_model("tsn", **TINY)
    model.eval()
    assert model(randn(2, 7, 3, 32, 32)).shape == [2, 5]


# --- Non-local ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_nonlocal_block_is_the_identity_at_init(train):
    paddle.seed(0)
    block = NonLocalBlock(16)
    block.train(train)
    x = randn(2, 16, 4, 6, 6)
    assert np.array_equal(block(x).numpy(), x.numpy())


def nonlocal_reference(block: NonLocalBlock, x: np.ndarray) -> np.ndarray:
    """Embedded Gaussian with 2x2 max-pooled phi/g input and an eval BN of mean 0, variance 1, scale 1."""
    def conv(layer, v):
        w, b = layer.weight.numpy()[:, :, 0, 0, 0], layer.bias.numpy()
        return np.einsum("oc,nc...->no...", w, v) + b.reshape(1, -1, 1, 1, 1)

    n, c, t, h, w = x.shape
    pooled = x.reshape(n, c, t, h // 2, 2, w // 2, 2).max(axis=(4, 6))
    theta = conv(block.theta, x).reshape(n, c // 2, -1)
    phi, g = conv(block.phi, pooled).reshape(n, c // 2, -1), conv(block.g, pooled).reshape(n, c // 2, -1)
    logits = np.einsum("nci,ncj->nij", theta, phi) / np.sqrt(c // 2)
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    y = np.einsum("nij,ncj->nci", attention, g).reshape(n, c // 2, t, h, w)
    return x + conv(block.out, y) / np.sqrt(1 + block.bn._epsilon)


def test_nonlocal_block_computes_embedded_gaussian_attention():
    paddle.seed(0)
    block = NonLocalBlock(8)
    for conv in (block.theta, block.phi, block.g, block.out):
        conv.weight.set_value(randn(*conv.weight.shape, seed=1) * 0.5)
        conv.bias.set_value(randn(*conv.bias.shape, seed=2) * 0.1)
    block.bn.weight.set_value(paddle.ones([8]))
    block.eval()
    x = randn(2, 8, 3, 4, 6, seed=3)
    assert np.allclose(block(x).numpy(), nonlocal_reference(block, x.numpy().astype("float64")), atol=1e-4)


def test_nonlocal_positions_at_the_seed_settings():
    assert nonlocal_positions(50) == [(2, 1), (2, 3), (3, 1), (3, 3), (3, 5)]
    assert nonlocal_positions(101) == [(2, 1), (2, 3), (3, 6), (3, 13), (3, 20)]
    assert nonlocal_positions(50, ()) == []


@pytest.mark.parametrize("arch", ["c2d", "i3d"])
def test_nonlocal_net_starts_as_its_backbone(arch):
    paddle.seed(0)
    with_nl = NonLocalNet(**TINY, arch=arch)
    plain = NonLocalNet(**TINY, arch=arch, nonlocal_stages=())
    plain.set_state_dict({k: v for k, v in with_nl.state_dict().items() if "extra_blocks" not in k})
    with_nl.eval(), plain.eval()
    assert len(with_nl.backbone.extra_blocks) == 2 and len(plain.backbone.extra_blocks) == 0
    clip = randn(2, 3, 4, 32, 32)
    assert np.allclose(with_nl(clip).numpy(), plain(clip).numpy(), atol=1e-6)


def test_i3d_kernels_and_temporal_pooling():
    net = ResNet3D(50, arch="i3d", num_classes=0, base_width=8)
    kernels = [[block.conv1.weight.shape[2] for block in stage] for stage in net.stages()]
    assert net.conv1.weight.shape[2] == 5
    assert kernels == [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]
    c2d = ResNet3D(18, arch="c2d", num_classes=0, base_width=8)
    assert {p.shape[2] for n, p in c2d.named_parameters() if p.ndim == 5} == {1}
    assert c2d.forward_features(randn(1, 3, 8, 64, 64)).shape == [1, 64, 4, 2, 2]


# --- StNet -------------------------------------------------------------------------------------------

def test_super_images_stack_each_segments_frames_on_channels():
    seg_num, seglen = 3, 4
    frames = np.arange(seg_num * seglen)[None, :, None, None, None] * 10 + np.arange(3)[None, None, :, None, None]
    frames = np.broadcast_to(frames, (2, seg_num * seglen, 3, 5, 5)).astype("float32")
    stacked = super_images(paddle.to_tensor(frames), seglen).numpy()
    assert stacked.shape == (2, seg_num, seglen * 3, 5, 5)
    for s in range(seg_num):
        for k in range(seglen):
            assert np.array_equal(stacked[:, s, 3 * k:3 * k + 3], frames[:, s * seglen + k])
    six_d = paddle.to_tensor(frames.reshape(2, seg_num, seglen, 3, 5, 5))
    assert np.array_equal(super_images(six_d, seglen).numpy(), stacked)


def test_temporal_modeling_mixes_neighbouring_segments_only():
    paddle.seed(0)
    block = TemporalModeling(4)
    block.eval()
    x = randn(2 * 5, 4, 3, 3)
    changed = x.numpy().copy()
    changed[0] += 1.0                                      # video 0, segment 0
    diff = np.abs(block(x, 5).numpy() - block(paddle.to_tensor(changed), 5).numpy()).reshape(2, 5, -1).max(-1)
    assert (diff[0, :2] > 0).all() and (diff[0, 2:] == 0).all() and (diff[1] == 0).all()


def test_stnet_takes_more_segments_at_test_and_checks_channels():
    model = StNet(**TINY, seg_num=3, seglen=2)
    model.eval()
    assert model(randn(2, 5, 6, 32, 32)).shape == [2, 5]
    with pytest.raises(ValueError, match="super_images"):
        model(randn(2, 3, 3, 32, 32))


# --- ImageNet initialisation -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_pdparams(tmp_path_factory):
    paddle.seed(1)
    net = resnet18(pretrained=False)
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pdparams"
    paddle.save(net.state_dict(), str(path))
    return path, net


def test_resnet_loads_paddle_vision_weights_by_name(resnet18_pdparams):
    path, reference = resnet18_pdparams
    model = ResNet(18)
    report = load_pretrained(model, path)
    assert report == {"loaded": list(model.state_dict()), "skipped": [], "missing": []}
    model.eval(), reference.eval()
    image = randn(2, 3, 64, 64)
    assert np.allclose(model(image).numpy(), reference(image).numpy(), atol=1e-5)


def test_tsn_takes_resnet50_backbone_and_skips_the_classifier(tmp_path):
    paddle.seed(1)
    source = resnet50(pretrained=False).state_dict()
    path = tmp_path / "resnet50.pdparams"
    paddle.save(source, str(path))
    model = TSN(num_classes=400)
    report = load_pretrained(model, path)
    assert report["skipped"] == ["fc.weight", "fc.bias"] and report["missing"] == ["fc.weight", "fc.bias"]
    assert report["loaded"] == [f"backbone.{k}" for k in source if not k.startswith("fc.")]
    assert np.array_equal(model.backbone.layer4[0].downsample[0].weight.numpy(),
                          source["layer4.0.downsample.0.weight"].numpy())
    assert np.array_equal(model.backbone.layer1[2].bn3._variance.numpy(), source["layer1.2.bn3._variance"].numpy())


def test_stnet_first_conv_averages_rgb_over_the_segment(resnet18_pdparams):
    path, reference = resnet18_pdparams
    model = StNet(num_classes=10, depth=18, seglen=5)
    report = load_pretrained(model, path)
    rgb = reference.conv1.weight.numpy()
    expected = np.repeat(rgb.mean(axis=1, keepdims=True) / 5, 15, axis=1)
    assert np.allclose(model.backbone.conv1.weight.numpy(), expected, atol=1e-7)
    assert "backbone.conv1.weight" in report["loaded"]
    assert report["skipped"] == ["fc.weight", "fc.bias"]
    new = {name.split(".")[0] for name in report["missing"]}
    assert new == {"temporal3", "temporal4", "xception", "fc"}


def test_i3d_inflates_2d_kernels_over_time(resnet18_pdparams):
    path, reference = resnet18_pdparams
    model = NonLocalNet(num_classes=10, depth=18, arch="i3d")
    report = load_pretrained(model, path)
    stem, source = model.backbone.conv1.weight.numpy(), reference.conv1.weight.numpy()
    assert stem.shape == (64, 3, 5, 7, 7)
    assert np.allclose(stem, np.repeat(source[:, :, None] / 5, 5, axis=2)) and np.allclose(stem.sum(2), source)
    inflated = model.backbone.layer2[0].conv1.weight.numpy()
    assert inflated.shape[2] == 3 and np.allclose(inflated.sum(2), reference.layer2[0].conv1.weight.numpy())
    assert all(".extra_blocks." in name or name.startswith("fc.") for name in report["missing"])
    assert len(report["loaded"]) == len(reference.state_dict()) - 2


def test_missing_weights_file_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pdparams"):
        load_pretrained(ResNet(18, base_width=8), tmp_path / "nothing.pdparams")


# --- parameter counts at the seed settings, from the published architectures ---------------------------

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
I3D_R50_KERNELS = [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]   # first conv of each block


def conv_params(cin, cout, k, kt=1, bias=False):
    return cin * cout * k * k * kt + (cout if bias else 0)


def resnet_params(depth, num_classes=1000, in_channels=3, stem_kt=1, kernels=None):
    """ResNet of He et al. (BN: scale + shift per channel), optionally with temporal kernels."""
    total = conv_params(in_channels, 64, 7, stem_kt) + 2 * 64
    cin = 64
    for s, blocks in enumerate(STAGES[depth]):
        planes = 64 * 2 ** s
        for i in range(blocks):
            kt = kernels[s][i] if kernels else 1
            if depth >= 50:
                cout = 4 * planes
                total += conv_params(cin, planes, 1, kt) + conv_params(planes, planes, 3) + conv_params(planes, cout, 1)
                total += 2 * (planes + planes + cout)
            else:
                cout = planes
                total += conv_params(cin, planes, 3, kt) + conv_params(planes, planes, 3) + 2 * (2 * planes)
            if cin != cout or (i == 0 and s > 0):
                total += conv_params(cin, cout, 1) + 2 * cout
            cin = cout
    return total + (cin * num_classes + num_classes if num_classes else 0)


def temporal_modeling_params(c):
    return conv_params(c, c, 1, kt=3, bias=True) + 2 * c


def temporal_xception_params(c):
    h = c // 2
    depthwise = 3 * c + c + 3 * h + h
    pointwise = conv_params(c, h, 1, bias=True) + conv_params(h, h, 1, bias=True) + conv_params(c, h, 1, bias=True)
    return depthwise + pointwise + 2 * c + 2 * h + 2 * h


def nonlocal_block_params(c):
    return 3 * conv_params(c, c // 2, 1, bias=True) + conv_params(c // 2, c, 1, bias=True) + 2 * c


NL_R50 = 2 * nonlocal_block_params(512) + 3 * nonlocal_block_params(1024)
FC_400 = 2048 * 400 + 400

SEED_MODELS = {
    "tsn": ({}, resnet_params(50, 0) + FC_400),
    "tsm": ({}, resnet_params(50, 0) + FC_400),
    "stnet": ({}, resnet_params(50, 0, in_channels=15) + temporal_modeling_params(512)
              + temporal_modeling_params(1024) + temporal_xception_params(2048) + 1024 * 400 + 400),
    "non_local": ({}, resnet_params(50, 0) + NL_R50 + FC_400),
    "non_local_i3d": ({"arch": "i3d"}, resnet_params(50, 0, stem_kt=5, kernels=I3D_R50_KERNELS) + NL_R50 + FC_400),
}


def test_resnet_formula_gives_the_published_sizes():
    published = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160}
    assert {depth: resnet_params(depth) for depth in published} == published
    assert count_parameters(ResNet(50)) == published[50]


@pytest.mark.parametrize("name", list(SEED_MODELS))
def test_parameter_count_at_seed_settings(name):
    kwargs, expected = SEED_MODELS[name]
    model = create_model(name.replace("_i3d", ""), **kwargs)
    count = count_parameters(model)
    print(f"{name}: {count:,} trainable parameters")
    assert count == expected
