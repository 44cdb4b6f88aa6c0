"""Do the YouTube-8M models learn? Held-out GAP per epoch on synthetic data, with the tiny configs.

    python benchmarks/learn_youtube8m.py [--epochs 4] [--videos-per-file 128]

Writes 5 synthetic frame-level tfrecords (20 classes), converts 4 of them into the training cache
and the 5th into a held-out cache (the same class prototypes, other videos), trains each model with
``configs/<model>_tiny.yaml`` and evaluates after every epoch. Target: GAP >= 0.9 within a few CPU
minutes.
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
    parser.add_argument("--videos-per-file", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m
    from videotk.trainers.config import load_config
    from videotk.trainers.loop import train

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-learn-"))
    try:
        files = synth_youtube8m(work / "raw", num_files=5, videos_per_file=args.videos_per_file, num_classes=20)
        convert_youtube8m(work / "raw" / "train000[0-3].tfrecord", work / "train", workers=1)
        convert_youtube8m(files[4], work / "valid", workers=1)
        print(f"{4 * args.videos_per_file} training videos, {args.videos_per_file} held out, 20 classes")
        for model in MODELS:
            config = load_config(model, f"{model}_tiny", [f"train.epochs={args.epochs}"])
            start = time.perf_counter()
            result = train(config, str(work / "train"), valid_shards=str(work / "valid"), save_dir=work / model)
            seconds = time.perf_counter() - start
            gaps = " ".join(f"{result['metrics'][e]['gap']:.3f}" for e in range(args.epochs))
            first = next((e for e in range(args.epochs) if result["metrics"][e]["gap"] >= 0.9), None)
            reached = f"GAP >= 0.9 after epoch {first}" if first is not None else "GAP < 0.9"
            print(f"{model:<18} held-out GAP per epoch: {gaps}   {reached}; {seconds:.0f} s in all")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
