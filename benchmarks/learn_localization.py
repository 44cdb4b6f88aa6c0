"""Do BMN, BSN and C-TCN learn? Held-out metrics of the tiny configs on synthetic ActivityNet data,
beside the same pipeline with untrained weights, over several seeds.

    python benchmarks/learn_localization.py [--seeds 0 1 2] [--videos 96] [--models bmn bsn ctcn]

For each seed: ``vtk synth activitynet`` twice, ``--videos`` videos of 4 classes with 64-d
features: for BMN and BSN with 2-5 action segments of 3-20 % of the video each, whose snippet
features are rescaled to 64 points (with the synth's default 1-3 segments of 5-60 %, proposals at
random already cover much of them: untrained models score AUC 40-55 there); for C-TCN with the
default segments, as its score sequences at their length. Each model's tiny config is trained on
the training subset and evaluated on the validation subset. The untrained figure is the
same evaluation of the model as built with the seed. The issue's bars: AUC >= 60 for BMN and BSN,
average mAP >= 0.3 and mAP@0.5 >= 0.6 for C-TCN, each at least twice the untrained figure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

TSCALE = 64
SEGMENTS, SEGMENT_LENGTH = (2, 5), (0.03, 0.2)
KEYS = {"bmn": ("auc",), "bsn": ("auc",), "ctcn": ("average_map", "map@0.5")}


def caches(root: Path, seed: int, videos: int) -> dict[str, Path]:
    from videotk.pipelines.activitynet import convert_activitynet
    from videotk.pipelines.synth_activitynet import synth_activitynet

    short = synth_activitynet(root / "short", num_videos=videos, num_classes=4, tscale=TSCALE, feature_dim=64,
                              segments=SEGMENTS, segment_length=SEGMENT_LENGTH, seed=seed)
    convert_activitynet(short.snippet_dir, short.official_json, root / "snippets", tscale=TSCALE, workers=1)
    default = synth_activitynet(root / "default", num_videos=videos, num_classes=4, tscale=TSCALE, feature_dim=64,
                                seed=seed)
    convert_activitynet(default.ctcn_dir, default.official_json, root / "scores", workers=1)
    return {"bmn": root / "snippets", "bsn": root / "snippets", "ctcn": root / "scores"}


def untrained(model: str, cache: Path, seed: int) -> dict:
    import paddle

    from videotk.trainers import runtime
    from videotk.trainers.config import load_config
    from videotk.trainers.loop import build_model, evaluate_model
    from videotk.trainers.tasks import make_task

    config = load_config(model, f"{model}_tiny", [f"train.seed={seed}"])
    task = make_task(config)
    runtime.prepare("cpu", cpu_threads=config.train.cpu_threads, num_workers=0, seed=seed)
    paddle.seed(seed)
    return evaluate_model(build_model(config), task, task.open(cache), config)


def trained(model: str, cache: Path, seed: int, save_dir: Path) -> tuple[dict, float]:
    from videotk.trainers.config import load_config
    from videotk.trainers.loop import train

    config = load_config(model, f"{model}_tiny", [f"train.seed={seed}"])
    start = time.perf_counter()
    result = train(config, cache, valid_shards=cache, save_dir=save_dir)
    metrics = result["metrics"]
    final = metrics["final"] if "final" in metrics else metrics[max(k for k in metrics if isinstance(k, int))]
    return final, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--models", nargs="+", default=list(KEYS), choices=list(KEYS))
    args = parser.parse_args()

    rows = {model: [] for model in args.models}
    work = Path(tempfile.mkdtemp(prefix="vtk-learn-loc-"))
    try:
        for seed in args.seeds:
            made = caches(work / f"seed{seed}", seed, args.videos)
            for model in args.models:
                before = untrained(model, made[model], seed)
                after, seconds = trained(model, made[model], seed, work / f"seed{seed}" / f"run-{model}")
                rows[model].append((before, after, seconds))
                shown = ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in KEYS[model])
                print(f"seed {seed} {model:<5} {shown}  ({seconds:.0f} s of training)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.videos} synthetic videos per seed of 4 classes (BMN, BSN: {SEGMENTS[0]}-{SEGMENTS[1]} segments of "
          f"{SEGMENT_LENGTH[0]:.0%}-{SEGMENT_LENGTH[1]:.0%}; C-TCN: 1-3 of 5%-60%), tiny configs, held-out validation "
          "subset")
    print(f"{'model':<6} {'metric':<12} {'untrained':>18} {'trained':>18} {'ratio (min)':>12} {'train s':>8}")
    for model, results in rows.items():
        for key in KEYS[model]:
            before = [r[0][key] for r in results]
            after = [r[1][key] for r in results]
            ratio = min(a / b if b > 0 else float("inf") for a, b in zip(after, before))
            print(f"{model:<6} {key:<12} {_spread(before):>18} {_spread(after):>18} {ratio:>11.2f}x "
                  f"{statistics.mean(r[2] for r in results):>8.0f}")


def _spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    return f"{mean:.3f} [{min(values):.3f}, {max(values):.3f}]" if len(values) > 1 else f"{mean:.3f}"


if __name__ == "__main__":
    main()
