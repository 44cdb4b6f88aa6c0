"""Do the Kinetics models learn? Held-out top-1 on synthetic clips, with the tiny configs.

    python benchmarks/learn_kinetics.py [--clips-per-class 80] [--epochs 12] [--seeds 0 1 2]
                                        [--models tsn ...] [--datasets look motion] [--workdir DIR]

Two synthetic datasets of 4 classes, 2 s clips at 160x120, decoded at 12.5 fps and a 64-pixel
short side, split by the CSV's split column: (a) every class with its own look and motion, and
(b) ``--motion-pairs``: two pairs of classes that look alike and differ only by the direction of
motion. Each model trains with ``configs/<model>_tiny.yaml`` and is evaluated after every epoch.
Targets: top-1 >= 0.9 on (a) for every model; on (b), TSM, StNet and Non-local above TSN, which
averages frames and cannot see direction. With ``--workdir`` the synthetic caches are kept and
reused by later runs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

MODELS = ("tsn", "tsm", "stnet", "non_local")


def make_dataset(root: Path, clips_per_class: int, motion_pairs: bool) -> tuple[str, str]:
    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics

    if all((root / split / "manifest.json").exists() for split in ("train", "val")):
        return str(root / "train"), str(root / "val")  # made by an earlier run with the same --workdir
    csv = synth_kinetics(root / "raw", num_classes=4, clips_per_class=clips_per_class, duration=2.0, width=160,
                         height=120, motion_pairs=motion_pairs)
    for split in ("train", "val"):
        decode_kinetics(root / "raw", root / split, annotations=csv, split=split, short_side=64, fps=12.5, workers=2)
    return str(root / "train"), str(root / "val")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-per-class", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--datasets", nargs="+", choices=("look", "motion"), default=["look", "motion"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="train.seed values; each model trains once per seed (initialisation and sampling)")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="config override applied to every model, e.g. optimizer.learning_rate=0.001")
    args = parser.parse_args()

    from videotk.trainers.config import load_config
    from videotk.trainers.loop import train

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-learn-"))
    try:
        datasets = {"look": ("own look per class", False), "motion": ("motion pairs", True)}
        for name, pairs in (datasets[key] for key in args.datasets):
            folder = work / f"{name.replace(' ', '-')}-{args.clips_per_class}"
            train_cache, val_cache = make_dataset(folder, args.clips_per_class, pairs)
            print(f"\n{name}: {3 * args.clips_per_class} training clips, {args.clips_per_class} held out, 4 classes")
            for model in args.models:
                last = []
                for seed in args.seeds:
                    overrides = [f"train.epochs={args.epochs}", f"train.seed={seed}", *args.override]
                    config = load_config(model, f"{model}_tiny", overrides)
                    start = time.perf_counter()
                    result = train(config, train_cache, valid_shards=val_cache,
                                   save_dir=work / "runs" / name / f"{model}-seed{seed}", overwrite=True)
                    top1 = [result["metrics"][e]["video_top1"] for e in range(args.epochs)]
                    last.append(top1[-1])
                    print(f"{model:<10} seed {seed} held-out top-1 per epoch: {' '.join(f'{t:.2f}' for t in top1)}; "
                          f"best {max(top1):.2f}; {time.perf_counter() - start:.0f} s", flush=True)
                if len(args.seeds) > 1:
                    print(f"{model:<10} last epoch over {len(last)} seeds: min {min(last):.2f}, "
                          f"mean {sum(last) / len(last):.2f}, max {max(last):.2f}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
