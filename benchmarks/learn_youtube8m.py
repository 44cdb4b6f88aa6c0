"""Do the YouTube-8M models learn? Held-out GAP per epoch on synthetic data, with the tiny configs.

    python benchmarks/learn_youtube8m.py [--epochs 4] [--train-files 4] [--videos-per-file 128]
    python benchmarks/learn_youtube8m.py --classes 3862 --active 16 --epochs 8 --train-files 8 --target 0.8

Writes `--train-files` synthetic frame-level tfrecords and one held-out file of as many videos
(the same seed, prefix `validate`: the same classes and prototypes, other videos), converts them
into a training and a held-out cache, trains each model with ``configs/<model>_tiny.yaml`` (and
``model.num_classes`` set to `--classes`) and evaluates after every epoch.

- Default, 20 classes: target GAP >= 0.9 within a few CPU minutes.
- `--classes 3862 --active 16`: YouTube-8M's label space with labels from 16 classes, as when
  fine-tuning on a subset; target GAP >= 0.8 within 8 epochs over 1,024 training videos.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

MODELS = ("attention_cluster", "attention_lstm", "nextvlad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-files", type=int, default=4)
    parser.add_argument("--videos-per-file", type=int, default=128)
    parser.add_argument("--classes", type=int, default=20, help="size of the label space")
    parser.add_argument("--active", type=int, default=None, help="classes the labels are drawn from (default: all)")
    parser.add_argument("--target", type=float, default=0.9, help="GAP to report the first epoch reaching")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-learn-"))
    try:
        make_caches(work, args)
        active = args.active or args.classes
        print(f"{args.train_files * args.videos_per_file} training videos, {args.videos_per_file} held out, "
              f"labels from {active} of {args.classes} classes")
        for model in args.models:
            report(model, work, args)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def make_caches(work: Path, args: argparse.Namespace) -> None:
    """Synthetic tfrecords in ``work/raw``, converted into the caches ``work/train`` and ``work/valid``."""
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    space = dict(num_classes=args.classes, active_classes=args.active, seed=args.seed,
                 videos_per_file=args.videos_per_file)
    synth_youtube8m(work / "raw", num_files=args.train_files, **space)
    synth_youtube8m(work / "raw", num_files=1, prefix="validate", **space)
    convert_youtube8m(str(work / "raw" / "train*.tfrecord"), work / "train", workers=1)
    convert_youtube8m(str(work / "raw" / "validate*.tfrecord"), work / "valid", workers=1)


def report(model: str, work: Path, args: argparse.Namespace) -> None:
    """Train ``model``'s tiny config on ``work/train``; print its held-out GAP after every epoch."""
    from videotk.trainers.config import load_config
    from videotk.trainers.loop import train

    config = load_config(model, f"{model}_tiny", [f"train.epochs={args.epochs}", f"model.num_classes={args.classes}"])
    start = time.perf_counter()
    result = train(config, str(work / "train"), valid_shards=str(work / "valid"), save_dir=work / model,
                   overwrite=True)
    seconds = time.perf_counter() - start
    gaps = [result["metrics"][epoch]["gap"] for epoch in range(args.epochs)]
    first = next((epoch for epoch, gap in enumerate(gaps) if gap >= args.target), None)
    reached = f"GAP >= {args.target:g} after epoch {first}" if first is not None else f"GAP < {args.target:g}"
    print(f"{model:<18} held-out GAP per epoch: {' '.join(f'{gap:.3f}' for gap in gaps)}   {reached}; "
          f"{seconds:.0f} s in all")


if __name__ == "__main__":
    main()
