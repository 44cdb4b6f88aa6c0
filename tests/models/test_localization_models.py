"""BMN, BSN (TEM, PEM) and C-TCN: sizes at the seed, the BM sampling matrix, output shapes, losses
(learning on a fixed batch, finite without positives, the legacy formulas where they are defined)."""

from __future__ import annotations

import gc
import math

import numpy as np
import paddle
import pytest

from videotk.models import count_parameters, create_model, model_info
from videotk.models.bmn import bmn_loss, boundary_matching_mask, proposal_mask
from videotk.models.bsn import binary_logistic_loss, pem_loss, tem_loss
from videotk.models.ctcn import ctcn_loss, hard_negatives
from videotk.trainers.targets import (
    bmn_targets,
    ctcn_anchors,
    ctcn_targets,
    tem_targets,
)

TINY_BMN = {"tscale": 16, "dscale": 16, "feat_dim": 8, "num_sample": 4, "num_sample_perbin": 2,
            "hidden_dim_1d": 16, "hidden_dim_2d": 8, "hidden_dim_3d": 16}
TINY_CTCN = {"num_classes": 4, "concept_size": 10, "img_size": 64, "num_levels": 5, "base_width": 8, "fpn_dim": 16,
             "loc_dim": 8, "cls_dim": 16}


def tensor(array, dtype="float32"):
    return paddle.to_tensor(np.asarray(array).astype(dtype))


def video_segments(n, rng):
    """One or two segments per video, normalised."""
    out = []
    for _ in range(n):
        s = rng.uniform(0.05, 0.4)
        segments = [[s, s + rng.uniform(0.2, 0.4)]]
        if rng.random() < 0.5:
            segments.append([0.8, 0.95])
        out.append(np.asarray(segments))
    return out


def snippet_features(segments, feat_dim, tscale, rng):
    """Noise plus a fixed direction inside the actions: ``[N, feat_dim, tscale]``."""
    direction = rng.standard_normal(feat_dim)
    feats = rng.standard_normal((len(segments), feat_dim, tscale)) * 0.5
    centres = (np.arange(tscale) + 0.5) / tscale
    for i, segs in enumerate(segments):
        inside = ((centres >= segs[:, :1]) & (centres <= segs[:, 1:])).any(axis=0)
        feats[i] += 2.0 * np.outer(direction, inside)
    return feats


def adam_losses(model, loss_fn, steps=8, lr=3e-3):
    """Losses of ``steps`` Adam steps on the same batch (``loss_fn(model) -> total``)."""
    paddle.seed(0)
    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    losses = []
    for _ in range(steps):
        loss = loss_fn(model)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    return losses


def assert_finite_gradients(model, loss):
    assert np.isfinite(float(loss))
    loss.backward()
    for name, p in model.named_parameters():
        if not p.stop_gradient and p.grad is not None:
            assert np.isfinite(p.grad.numpy()).all(), name


# --- sizes ---------------------------------------------------------------------------------------------

def test_parameter_count_at_the_seed():
    assert count_parameters(create_model("bmn")) == 2_782_980
    bsn = create_model("bsn")
    assert count_parameters(bsn.tem) == 505_091
    assert count_parameters(bsn.pem) == 4_353           # the legacy dead fc gives 4,257
    assert count_parameters(bsn) == 505_091 + 4_353


def test_ctcn_parameter_count_at_the_seed():
    """Built for real (about 1.3 GB of float32 and a few seconds), counted and freed."""
    model = create_model("ctcn")
    assert count_parameters(model) == 318_021_421
    frozen = sum(int(p.numel()) for p in model.parameters() if p.stop_gradient)
    assert frozen == 53_184                                   # BN running means and variances
    del model
    gc.collect()


def test_registry_entries():
    assert model_info("bsn")["config"] == "bsn.yaml"
    assert model_info("bmn")["config"] == "bmn.yaml" and model_info("ctcn")["config"] == "ctcn.yaml"
    assert "detection" in model_info("ctcn")["task"] and "proposals" in model_info("bmn")["task"]


# --- BMN -----------------------------------------------------------------------------------------------

def reference_mask(tscale, dscale, ratio, num_sample, perbin):
    """The BM sampling matrix computed one point at a time, as the 2019 code does."""
    mask = np.zeros((tscale, num_sample, dscale, tscale))
    for s in range(tscale):
        for d in range(dscale):
            if s + d >= tscale:
                continue
            length = d + 1.0
            lo, hi = s - ratio * length, s + d + ratio * length
            step = (hi - lo) / (num_sample * perbin - 1.0)
            for k in range(num_sample * perbin):
                point = lo + step * k
                frac, down = math.modf(point)
                for position, weight in ((int(down), 1 - frac), (math.ceil(point), frac)):
                    if 0 <= position < tscale:
                        mask[position, k // perbin, d, s] += weight / perbin
    return mask.reshape(tscale, -1)


@pytest.mark.parametrize("tscale, dscale, ratio, num_sample, perbin", [(8, 8, 0.5, 4, 3), (7, 5, 0.25, 3, 2)])
def test_boundary_matching_mask_is_the_pointwise_one(tscale, dscale, ratio, num_sample, perbin):
    mask = boundary_matching_mask(tscale, dscale, prop_boundary_ratio=ratio, num_sample=num_sample,
                                  num_sample_perbin=perbin)
    assert mask.shape == (tscale, num_sample * dscale * tscale) and mask.dtype == np.float32
    np.testing.assert_allclose(mask, reference_mask(tscale, dscale, ratio, num_sample, perbin), atol=1e-6)


def test_boundary_matching_mask_samples_average_features():
    """Constant features sample to the fraction of each bin's points inside the video."""
    mask = boundary_matching_mask(8, 8, num_sample=4, num_sample_perbin=3).reshape(8, 4, 8, 8)
    bins = mask.sum(axis=0)                                    # [sample, d, s]
    assert np.allclose(bins[:, proposal_mask(8, 8) == 0], 0)
    assert np.allclose(bins[:, 0, 3], 1.0)                     # [3, 3] samples [2.5, 4.5]: all inside
    assert 0 < bins[0, 0, 0] <= 1.0


def test_bmn_shapes_and_the_sample_mask_is_not_in_checkpoints():
    paddle.seed(0)
    model = create_model("bmn", **{**TINY_BMN, "dscale": 10})
    confidence, start, end = model(paddle.randn([2, 8, 16]))
    assert confidence.shape == [2, 2, 10, 16] and start.shape == end.shape == [2, 16]
    assert 0 < float(confidence.min()) and float(confidence.max()) < 1
    assert "sample_mask" not in model.state_dict()
    with pytest.raises(ValueError, match=r"\[N, feat_dim, 16\]"):
        model(paddle.randn([2, 8, 12]))
    with pytest.raises(ValueError, match="dscale <= tscale"):
        create_model("bmn", tscale=8, dscale=9)


def bmn_batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    segments = video_segments(n, rng)
    targets = [bmn_targets(s, 16, 16) for s in segments]
    feats = snippet_features(segments, 8, 16, rng)
    return tensor(feats), *(tensor(np.stack(t)) for t in zip(*targets))


def test_bmn_learns_a_fixed_batch():
    feats, iou_map, start, end = bmn_batch()
    assert float(iou_map.max()) > 0.9
    paddle.seed(0)
    model = create_model("bmn", **TINY_BMN)

    def loss(m):
        return bmn_loss(*m(feats), iou_map, start, end, rng=np.random.default_rng(0))[0]

    losses = adam_losses(model, loss, steps=15, lr=1e-2)
    assert losses[-1] < 0.8 * losses[0]


def test_bmn_loss_parts_and_the_legacy_formula_with_positives():
    feats, iou_map, start, end = bmn_batch()
    paddle.seed(0)
    confidence, pred_start, pred_end = create_model("bmn", **TINY_BMN)(feats)
    total, parts = bmn_loss(confidence, pred_start, pred_end, iou_map, start, end, rng=np.random.default_rng(0))
    assert set(parts) == {"tem", "pem_reg", "pem_cls"}
    assert float(total) == pytest.approx(float(parts["tem"] + 10 * parts["pem_reg"] + parts["pem_cls"]), rel=1e-6)
    # classification part, the 2019 formula written out (defined here: there are positives and negatives)
    p, g = confidence.numpy()[:, 1], iou_map.numpy() * proposal_mask(16, 16)
    pos, neg = (g > 0.9), (g <= 0.9) & (proposal_mask(16, 16) > 0)
    ratio = (pos.sum() + neg.sum()) / pos.sum()
    legacy = -(0.5 * ratio * np.log(p + 1e-6)[pos].sum()
               + 0.5 * ratio / (ratio - 1) * np.log(1 - p + 1e-6)[neg].sum()) / (pos.sum() + neg.sum())
    assert float(parts["pem_cls"]) == pytest.approx(legacy, rel=1e-4)


def test_bmn_loss_is_finite_without_positives():
    paddle.seed(0)
    model = create_model("bmn", **TINY_BMN)
    feats = paddle.randn([1, 8, 16])
    zeros = paddle.zeros([1, 16, 16]), paddle.zeros([1, 16]), paddle.zeros([1, 16])
    total, parts = bmn_loss(*model(feats), *zeros)
    assert all(np.isfinite(float(v)) for v in parts.values())
    assert float(parts["pem_reg"]) == 0.0
    assert_finite_gradients(model, total)


# --- BSN -----------------------------------------------------------------------------------------------

def test_tem_channels_and_its_loss_learns():
    rng = np.random.default_rng(1)
    segments = video_segments(4, rng)
    action, start, end = (tensor(np.stack(t)) for t in zip(*[tem_targets(s, 32) for s in segments]))
    feats = tensor(snippet_features(segments, 12, 32, rng))
    paddle.seed(0)
    model = create_model("bsn", feat_dim=12, tem_hidden_dim=16).tem
    pred = model(feats)
    assert pred.shape == [4, 3, 32]
    _, parts = tem_loss(pred, start, end, action)
    assert set(parts) == {"start", "end", "action"}
    # the order is (start, end, action): the start part only looks at channel 0
    alone = binary_logistic_loss(pred[:, 0], start)
    assert float(parts["start"]) == pytest.approx(float(alone))
    losses = adam_losses(model, lambda m: tem_loss(m(feats), start, end, action)[0], lr=1e-2)
    assert losses[-1] < 0.8 * losses[0]


def test_binary_logistic_loss_is_the_legacy_one_with_positives_and_finite_without():
    rng = np.random.default_rng(2)
    p, g = rng.uniform(0.05, 0.95, 50), (rng.random(50) > 0.7) * 0.8
    n, k = 50, (g > 0.5).sum()
    legacy = -(0.5 * n / k * np.mean((g > 0.5) * np.log(p + 1e-6))
               + 0.5 * n / (n - k + 1) * np.mean((g <= 0.5) * np.log(1 - p + 1e-6)))
    assert float(binary_logistic_loss(tensor(p), tensor(g))) == pytest.approx(legacy, rel=1e-5)
    pred = tensor(p)
    pred.stop_gradient = False
    loss = binary_logistic_loss(pred, paddle.zeros([50]))
    loss.backward()
    assert np.isfinite(float(loss)) and np.isfinite(pred.grad.numpy()).all()


def test_pem_scores_and_shapes():
    paddle.seed(0)
    model = create_model("bsn").pem
    assert model(paddle.randn([5, 32])).shape == [5]
    assert model(paddle.randn([2, 7, 32])).shape == [2, 7]
    with pytest.raises(ValueError, match=r"\[\.\.\., 32\]"):
        model(paddle.randn([5, 16]))
    with pytest.raises(ValueError, match=r"predictions \[2, 7\] and targets \[2, 7, 1\]"):
        pem_loss(model(paddle.randn([2, 7, 32])), paddle.zeros([2, 7, 1]))


def test_pem_sampling_keeps_every_high_proposal_and_about_as_many_others():
    gt = np.concatenate([np.full(100, 0.8), np.full(400, 0.4), np.full(2000, 0.1)]).astype("float32")
    pred = paddle.full([2500], 0.5)
    # with pred 0.5 every kept proposal contributes 0.5 * err^2; the mix tells the sample sizes apart
    values = [float(pem_loss(pred, tensor(gt), rng=np.random.default_rng(seed))) for seed in range(20)]
    expected = 0.5 * (100 * 0.09 + 100 * 0.01 + 200 * 0.16) / 400   # 100 high, ~100 medium, ~200 low
    assert np.mean(values) == pytest.approx(expected, rel=0.05)
    same = [float(pem_loss(pred, tensor(gt), rng=np.random.default_rng(3))) for _ in range(2)]
    assert same[0] == same[1]


def test_pem_learns_and_is_finite_with_empty_groups():
    rng = np.random.default_rng(3)
    bsp = tensor(rng.standard_normal((64, 32)))
    gt = tensor(1 / (1 + np.exp(-bsp.numpy()[:, :4].sum(axis=1))))
    paddle.seed(0)
    model = create_model("bsn").pem
    losses = adam_losses(model, lambda m: pem_loss(m(bsp), gt, rng=np.random.default_rng(0)), steps=15, lr=0.05)
    assert losses[-1] < 0.8 * losses[0]
    for empty in (np.zeros(64), np.full(64, 0.9), np.full(64, 0.4)):   # no high; only high; only medium
        assert_finite_gradients(model, pem_loss(model(bsp), tensor(empty)))


# --- C-TCN ---------------------------------------------------------------------------------------------

def test_ctcn_output_shapes_follow_the_anchors():
    paddle.seed(0)
    model = create_model("ctcn", **TINY_CTCN)
    model.eval()
    loc, conf = model(paddle.randn([2, 1, 64, 10]))
    assert loc.shape == [2, 217, 2] and conf.shape == [2, 217, 5] and len(ctcn_anchors(64, 5)) == 217
    assert float(loc.abs().max()) < 5
    # the seed's 512 rows and 8 levels, narrow: 1785 anchors
    seed_rows = create_model("ctcn", **{**TINY_CTCN, "img_size": 512, "num_levels": 8})
    seed_rows.eval()
    loc, conf = seed_rows(paddle.randn([1, 1, 512, 10]))
    assert loc.shape == [1, 1785, 2] and conf.shape == [1, 1785, 5]
    with pytest.raises(ValueError, match=r"\[N, 1, 64, 10\]"):
        model(paddle.randn([1, 1, 64, 12]))


def test_hard_negative_mining_keeps_three_per_positive():
    ce = tensor([[0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2], [0.4, 0.6, 0.1, 0.2, 0.3, 0.5, 0.9]])
    pos = paddle.to_tensor([[True, False, False, False, False, False, False], [False] * 7])
    neg = hard_negatives(ce, pos, paddle.ones([2, 7], dtype="bool"))
    assert neg.numpy().tolist() == [[False, True, False, True, False, True, False], [False] * 7]


def ctcn_batch(n=2, seed=0):
    """Concept scores with a class-coloured stripe per box, and their targets."""
    rng = np.random.default_rng(seed)
    images, locs, classes = [], [], []
    for _ in range(n):
        start = rng.uniform(2, 30)
        boxes = np.array([[start, start + rng.uniform(8, 30)]])
        labels = rng.integers(1, 5, size=1)
        image = rng.random((64, 10)) * 0.2
        image[int(boxes[0, 0]):int(boxes[0, 1]), labels[0]] += 1.0
        loc, cls = ctcn_targets(boxes, labels, img_size=64, num_levels=5)
        images.append(image[None])
        locs.append(loc)
        classes.append(cls)
    return tensor(np.stack(images)), tensor(np.stack(locs)), paddle.to_tensor(np.stack(classes))


def test_ctcn_learns_a_fixed_batch():
    images, loc_targets, cls_targets = ctcn_batch()
    paddle.seed(0)
    model = create_model("ctcn", **{**TINY_CTCN, "dropout": 0.0})
    total, parts = ctcn_loss(*model(images), loc_targets, cls_targets)
    assert set(parts) == {"loc", "cls"} and float(total) == pytest.approx(float(parts["loc"] + parts["cls"]))
    losses = adam_losses(model, lambda m: ctcn_loss(*m(images), loc_targets, cls_targets)[0])
    assert losses[-1] < 0.8 * losses[0]


def test_ctcn_loss_is_finite_without_positives():
    paddle.seed(0)
    model = create_model("ctcn", **TINY_CTCN)
    loc, conf = model(paddle.randn([2, 1, 64, 10]))
    total, _ = ctcn_loss(loc, conf, paddle.zeros([2, 217, 2]), paddle.zeros([2, 217], dtype="int64"))
    assert float(total) == 0.0
    assert_finite_gradients(model, total)
