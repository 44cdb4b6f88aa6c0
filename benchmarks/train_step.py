"""One training step (forward, loss, backward, optimizer step) of videotk's models beside the
reference implementation's, at the reference's published input sizes, one Paddle thread.

    python benchmarks/train_step.py [--reference PATH] [--models tsn tsm attention_lstm bmn]
                                    [--repeats 3] [--threads 1] [--batch N]

``--reference`` is a PaddleVideo 2.x checkout (the folder holding ``paddlevideo/``). Only the
files of each model are loaded (backbone, head, loss), with stand-ins for PaddleVideo's registry,
logger, checkpoint loader and loss builder, and for ``weight_init.weight_init_`` (the same
``paddle.nn.initializer`` by name, without the scipy import), so PaddleVideo's other dependencies
need not be installed; initialisation does not change a step's time. Inputs, as the reference's
configs train them, per sample: TSN 3 segments of 3 x 224 x 224 (ResNet-50, 400 classes, SGD with
momentum); TSM 8 segments of 3 x 224 x 224 (ResNet-50 with the temporal shift); Attention LSTM 300
frames of 1024-d rgb and 128-d audio, 3862 classes (RMSProp); BMN ``[400, 100]`` (Adam). Both
sides get the same batch; steps are interleaved after one warm-up each; the medians and their
ratio (reference time / videotk time: above 1 means videotk is faster) are printed. Without
``--reference`` only videotk is timed. ``--static`` also times videotk's models with their forward
converted by ``paddle.jit.to_static`` (the loss and the optimizer stay eager).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable

import numpy as np
import paddle
import paddle.nn.functional as F

BATCH = {"tsn": 2, "tsm": 2, "attention_lstm": 8, "bmn": 4}


# -- the reference, file by file ---------------------------------------------------------------------

class _Registry:
    def register(self, cls=None, **_):
        return cls if cls is not None else (lambda c: c)


def _weight_init_(layer, func, weight_name=None, bias_name=None, bias_value=0.0, **kwargs):
    if getattr(layer, "weight", None) is not None:
        getattr(paddle.nn.initializer, func)(**kwargs)(layer.weight)
    if getattr(layer, "bias", None) is not None:
        paddle.nn.initializer.Constant(bias_value)(layer.bias)


def _stand_ins(root: Path) -> None:
    """Empty packages for paddlevideo and the modules its model files import."""
    for name in ("paddlevideo", "paddlevideo.modeling", "paddlevideo.modeling.backbones",
                 "paddlevideo.modeling.heads", "paddlevideo.modeling.losses", "paddlevideo.metrics",
                 "paddlevideo.metrics.youtube8m"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    modules = {
        "paddlevideo.modeling.registry": {"BACKBONES": _Registry(), "HEADS": _Registry(), "LOSSES": _Registry()},
        "paddlevideo.modeling.weight_init": {"weight_init_": _weight_init_},
        "paddlevideo.modeling.builder": {"build_loss": lambda cfg: None},
        "paddlevideo.utils": {"load_ckpt": lambda *a, **k: None, "get_logger": lambda *a, **k: None,
                              "get_dist_info": lambda: (0, 1), "Registry": _Registry},
        "paddlevideo.metrics.youtube8m.eval_util": {},
    }
    for name, members in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        sys.modules[name] = module
    sys.modules["paddlevideo"].utils = sys.modules["paddlevideo.utils"]


def _load(root: Path, relative: str):
    name = "paddlevideo." + relative[: -len(".py")].replace("/", ".")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / "paddlevideo" / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def reference_step(root: Path, model: str, batch: int):
    """``(layer, loss(batch) -> tensor)`` of the reference's ``model``."""
    _stand_ins(root)
    if model in ("tsn", "tsm"):
        segments = 3 if model == "tsn" else 8
        if model == "tsn":
            backbone = _load(root, "modeling/backbones/resnet.py").ResNet(depth=50)
            head = _load(root, "modeling/heads/tsn_head.py").TSNHead(num_classes=400, in_channels=2048, drop_ratio=0.4)
        else:
            backbone = _load(root, "modeling/backbones/resnet_tsm.py").ResNetTSM(depth=50, num_seg=segments)
            _load(root, "modeling/heads/tsn_head.py")
            head = _load(root, "modeling/heads/tsm_head.py").TSMHead(num_classes=400, in_channels=2048,
                                                                      drop_ratio=0.5)
        layer = paddle.nn.Sequential(backbone, head)
        backbone.init_weights() if hasattr(backbone, "init_weights") else None
        head.init_weights()
        frames, labels = _frames(batch, segments)

        def loss():
            scores = head(backbone(frames.reshape([-1, 3, 224, 224])), segments)
            return F.cross_entropy(scores, labels)
        return layer, loss
    if model == "attention_lstm":
        head = _load(root, "modeling/heads/attention_lstm_head.py").AttentionLstmHead()
        rgb, audio, mask, labels = _features(batch)
        lengths = paddle.full([batch], 300, "int64")
        inputs = [(rgb, lengths, paddle.unsqueeze(mask, 2).expand([batch, 300, 1024])),
                  (audio, lengths, paddle.unsqueeze(mask, 2).expand([batch, 300, 128]))]

        def loss():
            logits, _ = head(inputs)
            return head.loss(logits, labels) / batch
        return head, loss
    if model == "bmn":
        _load(root, "modeling/losses/base.py")
        net = _load(root, "modeling/backbones/bmn.py").BMN(tscale=100, dscale=100, prop_boundary_ratio=0.5,
                                                           num_sample=32, num_sample_perbin=3)
        criterion = _load(root, "modeling/losses/bmn_loss.py").BMNLoss(dscale=100, tscale=100)
        x, targets = _bmn_batch(batch)

        def loss():
            return criterion(*net(x), *targets).sum()
        return net, loss
    raise ValueError(model)


# -- videotk ---------------------------------------------------------------------------------------

def videotk_step(model: str, batch: int, *, static: bool = False):
    """``(layer, loss() -> tensor)`` of videotk's ``model``; with ``static``, the layer's forward
    runs as a ``paddle.jit.to_static`` program."""
    from videotk.models import create_model

    if model in ("tsn", "tsm"):
        segments = 3 if model == "tsn" else 8
        layer = create_model(model, num_classes=400, seg_num=segments)
        forward = paddle.jit.to_static(layer) if static else layer
        frames, labels = _frames(batch, segments)
        return layer, lambda: F.cross_entropy(forward(frames), labels)
    if model == "attention_lstm":
        layer = create_model("attention_lstm")
        forward = paddle.jit.to_static(layer) if static else layer
        rgb, audio, mask, labels = _features(batch)

        def loss():
            logits = forward(rgb, audio, mask)
            return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / batch
        return layer, loss
    if model == "bmn":
        from videotk.models.bmn import bmn_loss

        layer = create_model("bmn")
        forward = paddle.jit.to_static(layer) if static else layer
        x, targets = _bmn_batch(batch)
        return layer, lambda: bmn_loss(*forward(x), *targets)[0]
    raise ValueError(model)


# -- shared inputs ---------------------------------------------------------------------------------

def _frames(batch: int, segments: int):
    rng = np.random.default_rng(0)
    frames = paddle.to_tensor(rng.standard_normal((batch, segments, 3, 224, 224)).astype(np.float32))
    return frames, paddle.to_tensor(rng.integers(0, 400, (batch, 1)))


def _features(batch: int):
    rng = np.random.default_rng(0)
    rgb = paddle.to_tensor(rng.standard_normal((batch, 300, 1024)).astype(np.float32))
    audio = paddle.to_tensor(rng.standard_normal((batch, 300, 128)).astype(np.float32))
    labels = np.zeros((batch, 3862), np.float32)
    labels[np.arange(batch), rng.integers(0, 3862, batch)] = 1
    return rgb, audio, paddle.ones([batch, 300]), paddle.to_tensor(labels)


def _bmn_batch(batch: int):
    from videotk.trainers.targets import bmn_targets

    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((batch, 400, 100)).astype(np.float32))
    maps = [bmn_targets(np.array([[0.1, 0.3], [0.5, 0.85]]), 100, 100) for _ in range(batch)]
    return x, [paddle.to_tensor(np.stack([m[i] for m in maps]).astype(np.float32)) for i in range(3)]


def optimizer_for(model: str, layer):
    parameters = layer.parameters()
    if model in ("tsn", "tsm"):
        return paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=parameters,
                                         weight_decay=paddle.regularizer.L2Decay(1e-4))
    if model == "attention_lstm":
        return paddle.optimizer.RMSProp(learning_rate=1e-3, rho=0.95, epsilon=1e-6, centered=True,
                                        parameters=parameters, weight_decay=paddle.regularizer.L2Decay(8e-4))
    return paddle.optimizer.Adam(learning_rate=1e-3, parameters=parameters,
                                 weight_decay=paddle.regularizer.L2Decay(1e-4))


def timer(model: str, layer, loss: Callable[[], paddle.Tensor]) -> Callable[[], float]:
    optimizer = optimizer_for(model, layer)
    layer.train()

    def step() -> float:
        start = time.perf_counter()
        value = loss()
        value.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(value)
        return time.perf_counter() - start

    return step


def interleaved(steps: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each step, taken in turns after one warm-up call each."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(step())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None, help="a PaddleVideo 2.x checkout")
    parser.add_argument("--models", nargs="+", default=list(BATCH), choices=list(BATCH))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet-header", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--static", action="store_true",
                        help="also time videotk's models with their forward under paddle.jit.to_static")
    parser.add_argument("--batch", type=int, default=None, help="samples per step for every model "
                        f"[default: {', '.join(f'{m} {b}' for m, b in BATCH.items())}]")
    args = parser.parse_args()
    if args.reference is not None and not (args.reference / "paddlevideo" / "modeling").is_dir():
        sys.exit(f"--reference {args.reference}: no paddlevideo/modeling there (give a PaddleVideo 2.x checkout)")

    if not args.quiet_header:
        print(f"one training step, {args.threads} Paddle thread(s), median of {args.repeats} after a warm-up")
        print(f"{'model':<15} {'batch':>5} {'parameters':>12} {'videotk s':>10} {'reference s':>12} {'ratio':>6}",
              flush=True)
    if len(args.models) > 1:  # one process per model: the reference names its parameters, which may not repeat
        rest = [a for a in sys.argv[1:] if a not in args.models and a != "--models"]
        for model in args.models:
            subprocess.run([sys.executable, __file__, "--models", model, "--quiet-header", *rest], check=True)
        return
    from videotk.models import count_parameters

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)
    for model in args.models:
        batch = args.batch or BATCH[model]
        paddle.seed(0)
        sides = {"videotk": videotk_step(model, batch)}
        if args.static:
            sides["static"] = videotk_step(model, batch, static=True)
        if args.reference is not None:
            sides["reference"] = reference_step(args.reference, model, batch)
        times = interleaved({name: timer(model, layer, loss) for name, (layer, loss) in sides.items()}, args.repeats)
        ours = statistics.median(times["videotk"])
        theirs = statistics.median(times["reference"]) if "reference" in times else None
        counts = {count_parameters(layer) for layer, _ in sides.values()}
        static = f"  to_static {statistics.median(times['static']):.2f} s" if "static" in times else ""
        print(f"{model:<15} {batch:>5} {'/'.join(f'{c:,}' for c in sorted(counts)):>12} {ours:>10.2f} "
              + (f"{theirs:>12.2f} {theirs / ours:>5.2f}x" if theirs else f"{'-':>12} {'-':>6}") + static, flush=True)
        del sides


if __name__ == "__main__":
    main()
