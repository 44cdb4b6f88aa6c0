"""One BMN training step at the seed's input beside the reference's (see ``train_step.py``), and
the loader's throughput against what the model consumes.

    python benchmarks/train_step_bmn.py [--reference PATH] [--batch 4] [--repeats 3] [--threads 1]
                                        [--videos 128]

The step: ``[batch, 400, 100]`` features with targets from two ground-truth segments per video,
BMN at the seed's settings (tscale = dscale = 100, 32 samples per proposal, 3 per bin), forward,
loss, backward and an Adam step, interleaved with PaddleVideo 2.x's BMN when ``--reference`` names
its checkout. The loader: BMN's samples (features, IoU map, start and end targets) per second from
a synthetic ActivityNet cache of ``--videos`` videos at 100 points, with 0 and 2 DataLoader
workers, beside what the model consumes (batch / step time).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paddle

from train_step import interleaved, reference_step, timer, videotk_step


def loader_rates(batch: int, videos: int) -> dict[int, float]:
    from videotk.pipelines.activitynet import convert_activitynet
    from videotk.pipelines.synth_activitynet import synth_activitynet
    from videotk.trainers.config import load_config
    from videotk.trainers.tasks import make_task

    work = Path(tempfile.mkdtemp(prefix="vtk-bmn-"))
    try:
        raw = synth_activitynet(work / "raw", num_videos=videos, tscale=100, feature_dim=400)
        convert_activitynet(raw.snippet_dir, raw.official_json, work / "cache", tscale=100, workers=1)
        config = load_config("bmn", None, [f"train.batch_size={batch}"])
        task = make_task(config)
        cache = task.open(work / "cache")
        rates = {}
        for workers in (0, 2):
            start, samples = time.perf_counter(), 0
            for _ in range(2):
                for item in task.loader(cache, batch_size=batch, num_workers=workers, train=True):
                    samples += int(item["features"].shape[0])
            rates[workers] = samples / (time.perf_counter() - start)
        return rates
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None, help="a PaddleVideo 2.x checkout")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--videos", type=int, default=128, help="synthetic videos for the loader's part")
    args = parser.parse_args()
    if args.reference is not None and not (args.reference / "paddlevideo" / "modeling" / "backbones" / "bmn.py").is_file():
        sys.exit(f"--reference {args.reference}: no paddlevideo/modeling/backbones/bmn.py there")

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)
    paddle.seed(0)
    sides = {"videotk": videotk_step("bmn", args.batch)}
    if args.reference is not None:
        sides["reference"] = reference_step(args.reference, "bmn", args.batch)
    times = interleaved({name: timer("bmn", layer, loss) for name, (layer, loss) in sides.items()}, args.repeats)
    print(f"BMN training step, input [{args.batch}, 400, 100], {args.threads} thread(s), median of {args.repeats}")
    for name, values in times.items():
        print(f"{name:<10} {statistics.median(values):7.2f} s/step (min {min(values):.2f}, max {max(values):.2f})")
    if "reference" in times:
        print(f"speed ratio reference / videotk: {statistics.median(times['reference']) / statistics.median(times['videotk']):.2f}x")
    consumed = args.batch / statistics.median(times["videotk"])
    for workers, rate in loader_rates(args.batch, args.videos).items():
        print(f"loader, {workers} workers: {rate:8.1f} samples/s = {rate / consumed:6.1f}x what the model "
              f"consumes ({consumed:.2f} samples/s)")


if __name__ == "__main__":
    main()
