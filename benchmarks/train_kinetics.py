"""Training throughput of the Kinetics models against what the clip loader can feed them.

    python benchmarks/train_kinetics.py [--steps 3] [--seed-batch 2]

Synthetic 10 s clips at 340x256 decoded at 25 fps and a 256 short side. For each model, at its tiny
config and at the seed's (ResNet-50, 224 crops, the seed's frames per clip) with a small batch:
training samples/s (forward, backward, optimizer step on batches already in memory) and clip-loader
samples/s (decode, sample, augment; 0 and 2 DataLoader workers) with the same data settings.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from pathlib import Path

from train_youtube8m import loader_rate, training_rate

MODELS = ("tsn", "tsm", "stnet", "non_local")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed-batch", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics
    from videotk.trainers.config import load_config
    from videotk.trainers.tasks import make_task

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-train-"))
    try:
        synth_kinetics(work / "raw", num_classes=4, clips_per_class=4, duration=10.0, width=340, height=256)
        decode_kinetics(work / "raw", work / "cache", workers=2)
        cache = str(work / "cache")
        print("16 synthetic clips of 10 s at 340x256, 25 fps; one Paddle process, threads = train.cpu_threads or cores")
        print(f"{'model':<10} {'size':<5} {'batch':>5} {'train/s':>8} {'load/s 0w':>10} {'load/s 2w':>10} {'ratio':>6}")
        for model in MODELS:
            for size, config in (("tiny", load_config(model, f"{model}_tiny")),
                                 ("seed", load_config(model, None, [f"train.batch_size={args.seed_batch}"]))):
                task = make_task(config)
                loader = task.loader(task.open(cache), batch_size=config.train.batch_size, num_workers=0, train=True)
                batches = list(itertools.islice(loader, 2))
                train_rate = training_rate(config, batches, args.steps)
                load0, load2 = loader_rate(config, cache, 0, 4), loader_rate(config, cache, 2, 4)
                print(f"{model:<10} {size:<5} {config.train.batch_size:>5} {train_rate:>8.2f} {load0:>10.1f} "
                      f"{load2:>10.1f} {max(load0, load2) / train_rate:>5.1f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
