"""One BMN training step (forward, loss, backward, Adam step) at the seed's input, side by side
with the reference implementation when its checkout is given.

    python benchmarks/train_step_bmn.py [--reference PATH] [--batch 4] [--tscale 100] [--repeats 5]
                                        [--threads 1]

The input is ``[batch, 400, tscale]`` float32 with targets made from two ground-truth segments per
video; both models are built at the seed's settings (tscale = dscale, 32 samples per proposal, 3
per bin). ``--reference`` is a PaddleVideo 2.x checkout (the folder holding ``paddlevideo/``):
only its ``modeling/backbones/bmn.py``, ``modeling/losses/base.py`` and ``losses/bmn_loss.py`` are
loaded, with a stand-in for its registry, so its other dependencies need not be installed. Steps
of the two are interleaved, after one warm-up step each; the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import paddle


def targets(batch: int, tscale: int) -> list[paddle.Tensor]:
    from videotk.trainers.targets import bmn_targets

    maps = [bmn_targets(np.array([[0.1, 0.3], [0.5, 0.85]]), tscale, tscale) for _ in range(batch)]
    return [paddle.to_tensor(np.stack([m[i] for m in maps]).astype(np.float32)) for i in range(3)]


def reference_modules(root: Path):
    """The reference's BMN class and BMNLoss, loaded from their files with a stand-in registry."""
    registry = types.ModuleType("paddlevideo.modeling.registry")

    class Registry:
        def register(self, cls=None, **_):
            return cls if cls is not None else (lambda c: c)

    registry.BACKBONES = registry.LOSSES = Registry()
    for name in ("paddlevideo", "paddlevideo.modeling", "paddlevideo.modeling.backbones",
                 "paddlevideo.modeling.losses"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    sys.modules["paddlevideo.modeling.registry"] = registry

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    modeling = root / "paddlevideo" / "modeling"
    load("paddlevideo.modeling.losses.base", modeling / "losses" / "base.py")
    backbone = load("paddlevideo.modeling.backbones.bmn", modeling / "backbones" / "bmn.py")
    loss = load("paddlevideo.modeling.losses.bmn_loss", modeling / "losses" / "bmn_loss.py")
    return backbone.BMN, loss.BMNLoss


def ours(tscale: int):
    from videotk.models.bmn import BMN, bmn_loss

    model = BMN(tscale=tscale, dscale=tscale)
    return model, lambda outputs, gt: bmn_loss(*outputs, *gt)[0]


def reference(root: Path, tscale: int):
    BMN, BMNLoss = reference_modules(root)
    model = BMN(tscale=tscale, dscale=tscale, prop_boundary_ratio=0.5, num_sample=32, num_sample_perbin=3)
    criterion = BMNLoss(dscale=tscale, tscale=tscale)
    return model, lambda outputs, gt: criterion(*outputs, *gt)


def stepper(model, loss_fn, x, gt):
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters(),
                                      weight_decay=paddle.regularizer.L2Decay(1e-4))
    model.train()

    def step() -> float:
        start = time.perf_counter()
        loss = loss_fn(model(x), gt)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(loss)
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None, help="a PaddleVideo 2.x checkout")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tscale", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from videotk.models import count_parameters

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)
    paddle.seed(0)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((args.batch, 400, args.tscale)).astype(np.float32))
    gt = targets(args.batch, args.tscale)
    runs = {"videotk": ours(args.tscale)}
    if args.reference is not None:
        if not (args.reference / "paddlevideo" / "modeling" / "backbones" / "bmn.py").is_file():
            sys.exit(f"--reference {args.reference}: no paddlevideo/modeling/backbones/bmn.py there")
        runs["reference"] = reference(args.reference, args.tscale)
    steps = {name: stepper(model, loss_fn, x, gt) for name, (model, loss_fn) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for name, step in steps.items():
        step()  # warm-up
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(step())
    print(f"BMN training step, input [{args.batch}, 400, {args.tscale}], {args.threads} thread(s), "
          f"median of {args.repeats}")
    for name, (model, _) in runs.items():
        print(f"{name:<10} {count_parameters(model):>10,} parameters  {statistics.median(times[name]):7.2f} s/step "
              f"(min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    if "reference" in times:
        ratio = statistics.median(times["reference"]) / statistics.median(times["videotk"])
        print(f"speed ratio videotk / reference: {ratio:.2f}x")


if __name__ == "__main__":
    main()
