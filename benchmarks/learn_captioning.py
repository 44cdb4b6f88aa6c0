"""Do ETS and TALL learn? Held-out metrics of their tiny configs on synthetic data, beside two
baselines measured by the same metric code, over several seeds.

    python benchmarks/learn_captioning.py [--seeds 0 1 2] [--videos 160] [--movies 48] [--models ets tall]

For each seed: ``vtk synth anet-captions`` (``--videos`` videos, 64-d features, a quarter of them
in val_1 / val_2) converted into one cache, and ``vtk synth tacos`` (``--movies`` movies, 64-d
windows, 48-d sentences, a quarter for test) converted into a train and a test cache. Each tiny
config trains on the training part (``train.seed`` = the seed) and is evaluated on the held-out
part: ETS captions the val_1 segments (beam 3) and is scored against val_1 and val_2 (METEOR too
when Java is on PATH); TALL grounds the test sentences in the 128/256-frame test windows.

Baselines: the same model untrained (as built with the seed), and the trained model's outputs
shuffled: ETS's captions given to random other segments of the held-out videos, TALL's scores
permuted among each sentence's windows (offsets kept). The issue's bars: ETS BLEU-4 >= 0.5 and TALL
R@1 at IoU 0.5 >= 0.5, each at least twice the untrained figure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = {"ets": ("bleu_4", "meteor", "cider"), "tall": ("r@1,iou0.5", "r@5,iou0.5", "r@1,iou0.7")}


def ets_caches(root: Path, seed: int, videos: int) -> tuple[Path, Path]:
    from videotk.pipelines.anet_captions import convert_anet_captions
    from videotk.pipelines.synth_captions import synth_anet_captions

    raw = synth_anet_captions(root / "anet", videos=videos, feature_dim=64, seed=seed)
    convert_anet_captions(raw["features"], [raw["train"], raw["val_1"], raw["val_2"]], root / "anet-cache", workers=1)
    return root / "anet-cache", root / "anet-cache"


def tall_caches(root: Path, seed: int, movies: int) -> tuple[Path, Path]:
    from videotk.pipelines.synth_captions import synth_tacos
    from videotk.pipelines.tacos import convert_tacos

    raw = synth_tacos(root / "tacos", movies=movies, feature_dim=64, sentence_dim=48, seed=seed)
    for subset in ("train", "test"):
        convert_tacos(raw[f"{subset}_windows"], raw[subset], root / f"tacos-{subset}", workers=1)
    return root / "tacos-train", root / "tacos-test"


def setup(model: str, seed: int):
    from videotk.trainers import runtime
    from videotk.trainers.config import load_config
    from videotk.trainers.tasks import make_task

    config = load_config(model, f"{model}_tiny", [f"train.seed={seed}"])
    runtime.prepare("cpu", cpu_threads=config.train.cpu_threads, num_workers=0, seed=seed)
    return config, make_task(config)


def untrained(model: str, cache: Path, seed: int) -> dict:
    import paddle

    from videotk.trainers.loop import build_model, evaluate_model

    config, task = setup(model, seed)
    paddle.seed(seed)
    return evaluate_model(build_model(config), task, task.open(cache), config)


def trained(model: str, train_cache: Path, test_cache: Path, seed: int, save_dir: Path) -> tuple[dict, dict, float]:
    """The trained model's held-out metrics, its shuffled baseline, and the training time."""
    from videotk.trainers.checkpoint import latest_checkpoint, load_weights
    from videotk.trainers.loop import build_model, evaluate_model, train

    config, task = setup(model, seed)
    start = time.perf_counter()
    train(config, train_cache, save_dir=save_dir)
    seconds = time.perf_counter() - start
    scorer = build_model(config)
    load_weights(scorer, latest_checkpoint(save_dir))
    scorer.eval()
    cache = task.open(test_cache)
    shuffle = shuffled_ets if model == "ets" else shuffled_tall
    return evaluate_model(scorer, task, cache, config), shuffle(task, scorer, cache, seed), seconds


def shuffled_ets(task, model, cache, seed: int) -> dict:
    """The metrics of the trained captions given to random other held-out segments."""
    import paddle

    from videotk.trainers.tasks.captioning import caption_text

    rng = np.random.default_rng(seed)
    events, captions = [], []
    with paddle.no_grad():
        for batch in task.loader(cache, batch_size=32, num_workers=0, train=False):
            events += list(zip(batch["index"].numpy().tolist(), batch["event"].numpy().tolist()))
            captions += [caption_text(ids, task.words) for ids in task.decode(model, batch)]
    evaluator = task.evaluator()
    for (index, event), k in zip(events, rng.permutation(len(captions))):
        video = task.videos[index]
        evaluator.metric.update(video.id, video.segments[event: event + 1], [captions[k]], video.references())
    return evaluator.summary()


def shuffled_tall(task, model, cache, seed: int) -> dict:
    """The metrics of the trained outputs with each sentence's window scores permuted."""
    import paddle

    rng = np.random.default_rng(seed)
    evaluator = task.evaluator()
    with paddle.no_grad():
        for batch in task.loader(cache, batch_size=4, num_workers=0, train=False):
            outputs = task.movie_outputs(model, batch)
            for found in outputs:
                for row in found:
                    row[:, 0] = rng.permutation(row[:, 0])
            task.update(evaluator, outputs, batch, None)
    return evaluator.summary()


def summary(values: list[float]) -> str:
    """Mean and range of ``values``."""
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def ratio_text(ratio: float) -> str:
    """``6.3x``; ``>1000x`` when the baseline is (nearly) 0."""
    return f"{ratio:.1f}x" if ratio < 1000 else ">1000x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--videos", type=int, default=160, help="synthetic ActivityNet Captions videos per seed")
    parser.add_argument("--movies", type=int, default=48, help="synthetic TACoS movies per seed")
    parser.add_argument("--models", nargs="+", default=list(KEYS), choices=list(KEYS))
    args = parser.parse_args()

    rows: dict[str, list[tuple[dict, dict, dict, float]]] = {model: [] for model in args.models}
    work = Path(tempfile.mkdtemp(prefix="vtk-learn-captioning-"))
    try:
        for seed in args.seeds:
            root = work / f"seed{seed}"
            for model in args.models:
                made = ets_caches(root, seed, args.videos) if model == "ets" else tall_caches(root, seed, args.movies)
                before = untrained(model, made[1], seed)
                after, shuffled, seconds = trained(model, *made, seed, root / f"run-{model}")
                rows[model].append((before, shuffled, after, seconds))
                shown = ", ".join(f"{k} {before[k]:.3f} / {shuffled[k]:.3f} -> {after[k]:.3f}"
                                  for k in KEYS[model] if k in after)
                print(f"seed {seed} {model:<4} untrained / shuffled -> trained: {shown} ({seconds:.0f} s of training)",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nheld-out figures, tiny configs, seeds {' '.join(map(str, args.seeds))} (ETS: {args.videos} videos; "
          f"TALL: {args.movies} movies); mean (min-max)")
    print(f"{'model':<5} {'metric':<11} {'untrained':>20} {'shuffled':>20} {'trained':>20} {'min ratio':>10} "
          f"{'train s':>8}")
    for model, results in rows.items():
        for key in KEYS[model]:
            if key not in results[0][2]:
                continue
            before, shuffled, after = ([r[i][key] for r in results] for i in range(3))
            ratio = min(a / b if b > 0 else float("inf") for a, b in zip(after, before))
            print(f"{model:<5} {key:<11} {summary(before):>20} {summary(shuffled):>20} {summary(after):>20} "
                  f"{ratio_text(ratio):>10} {statistics.mean(r[3] for r in results):>8.0f}")


if __name__ == "__main__":
    main()
