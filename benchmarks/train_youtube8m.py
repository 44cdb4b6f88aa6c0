"""Training throughput of the YouTube-8M models against what the data loader can feed them.

    python benchmarks/train_youtube8m.py [--steps 6] [--seed-batch 8]

For each model, at its tiny config and at the seed's model sizes (``configs/<model>.yaml``, with a
small batch so a CPU step takes seconds, not minutes): training samples/s (forward, backward and
optimizer step on batches already in memory, i.e. what the model consumes) and data-loader
samples/s for the same data settings (cache -> paddle.io.DataLoader with 0 and 2 workers). The
loader should feed at least 5x what the model consumes.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from pathlib import Path

MODELS = ("attention_cluster", "attention_lstm", "nextvlad")


def training_rate(config, batches: list[dict], steps: int) -> float:
    """Samples/s of forward + backward + step over ``batches`` (cycled), after one warm-up step."""
    from videotk.trainers import runtime
    from videotk.trainers.loop import build_model
    from videotk.trainers.tasks import make_task

    runtime.set_threads(config.train.cpu_threads, 0)  # the config's cpu_threads, else every core
    task, model = make_task(config), build_model(config)
    scheduler = config.lr_scheduler.build(config.optimizer.learning_rate, config.train.batch_size)
    optimizer = config.optimizer.build(model, scheduler)
    model.train()
    samples, start = 0, None
    for index, batch in enumerate(itertools.islice(itertools.cycle(batches), steps + 1)):
        if index == 1:
            start = time.perf_counter()
        step = task.step(model, batch)
        step.loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        samples += step.samples if index else 0
    return samples / (time.perf_counter() - start)


def loader_rate(config, cache: str, workers: int, batches: int) -> float:
    from videotk.trainers.tasks import make_task

    task = make_task(config)
    loader = task.loader(task.open(cache), batch_size=config.train.batch_size, num_workers=workers, train=True)
    start, samples = time.perf_counter(), 0
    for batch in itertools.islice(loader, batches):
        samples += int(next(iter(batch.values())).shape[0])
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seed-batch", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m
    from videotk.trainers.config import load_config

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-train-"))
    try:
        synth_youtube8m(work / "raw", num_files=4, videos_per_file=128, num_classes=20, min_frames=200, max_frames=300)
        convert_youtube8m(work / "raw", work / "cache", workers=1)
        cache = str(work / "cache")
        print("512 synthetic videos of 200-300 frames; one Paddle process, threads = train.cpu_threads or cores")
        print(f"{'model':<18} {'size':<5} {'batch':>5} {'train/s':>8} {'load/s 0w':>10} {'load/s 2w':>10} {'ratio':>6}")
        for model in MODELS:
            for size, config in (("tiny", load_config(model, f"{model}_tiny")),
                                 ("seed", load_config(model, None, [f"train.batch_size={args.seed_batch}"]))):
                task_batches = list(itertools.islice(_loader(config, cache), 2))
                train_rate = training_rate(config, task_batches, args.steps)
                load0 = loader_rate(config, cache, 0, 8)
                load2 = loader_rate(config, cache, 2, 8)
                print(f"{model:<18} {size:<5} {config.train.batch_size:>5} {train_rate:>8.1f} {load0:>10.1f} "
                      f"{load2:>10.1f} {max(load0, load2) / train_rate:>5.1f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _loader(config, cache: str):
    from videotk.trainers.tasks import make_task

    task = make_task(config)
    return task.loader(task.open(cache), batch_size=config.train.batch_size, num_workers=0, train=True)


if __name__ == "__main__":
    main()
