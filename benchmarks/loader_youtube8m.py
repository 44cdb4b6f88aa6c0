"""YouTube-8M frame-level training input: videotk's cache loader against the legacy pickle reader.

    python benchmarks/loader_youtube8m.py [--files 8] [--videos-per-file 100] [--repeat 3] [--workdir DIR]

Synthetic frame-level tfrecords (120-300 frames per video, 3862 classes, made by ``vtk synth`` in a
subprocess) are converted to a Parquet cache, and the same records are written in the legacy layout:
one pickle per tfrecord holding a list of dicts ``{"video", "feature": uint8 [T, 1024], "audio":
uint8 [T, 128], "label": [ints], "nframes": min(T, 300)}``. Both then produce, per video, rgb
``[300, 1024]`` and audio ``[300, 128]`` dequantized and zero-padded, and a multi-hot label
``[3862]``; evaluation order, no sampling, page cache warm, best of ``--repeat`` runs.

- legacy: ``pickle.load`` of each file, then per video what the 2019 reader did: ``astype(float)``
  (float64), truncation to ``nframes``, dequantization, a float64 multi-hot label; plus the zero
  padding to 300 frames. Its arrays stay float64, as its reader handed them to the feeder.
- legacy, batched: the same samples grouped by 32, stacked as float32 and copied into paddle
  tensors, as its feeder did.
- videotk: ``YouTube8MFrames`` iterated directly, float samples (against the legacy samples), and
  through ``paddle.io.DataLoader`` (batch 32) with 0 and 2 worker processes, which adds stacking
  and the copy into paddle tensors (against the legacy batches). The DataLoader runs both ways:
  the readers hand over the uint8 codes and this process makes the float32 features of each batch
  (the task's inputs step, as training does; "batches only": without it, what the loader delivers),
  or the readers hand over float32 features.

Methods run once per round, rounds interleaved, each round starting with the two-process gain of
the moment (``two_processes.py``). Prints samples/s of each, the 2-worker / 0-worker ratios
(target >= 1.5x with the uint8 hand-over) beside the two-process gain, and the ratios to the
legacy reader (target: videotk >= 1.5x).

Through the DataLoader, a batch of 32 x 300 frames is 44 MB of float32 that Paddle copies into a
newly allocated tensor; glibc serves allocations above 32 MB with a fresh mmap each time, and the
page faults make that copy ten times slower than the copy itself. ``vtk train`` raises glibc's
thresholds (``videotk.trainers.runtime.keep_large_buffers``); this script does the same before
measuring, so the figures are what training gets. ``--plain-malloc`` measures without it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paddle

from videotk.formats import open_cache
from videotk.pipelines.youtube8m import convert_youtube8m
from videotk.trainers.loader import make_loader
from videotk.trainers.tasks.youtube8m import DEQUANTIZE_BIAS, DEQUANTIZE_SCALE, YouTube8MFrames, features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_processes import LoaderFigures, interleaved, load, median, ratios

NUM_CLASSES = 3862
MAX_FRAMES = 300
BATCH = 32


def make_sources(src: Path, files: int, videos_per_file: int) -> None:
    """Synthetic tfrecords, written by TensorFlow in a subprocess (Paddle, loaded here, must not
    share a process with a TensorFlow loaded before it)."""
    command = [sys.executable, "-m", "videotk", "synth", "youtube8m", "--out", str(src), "--files", str(files),
               "--videos-per-file", str(videos_per_file), "--classes", str(NUM_CLASSES),
               "--min-frames", "120", "--max-frames", "300"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def write_legacy_pickles(cache_path: Path, out: Path) -> list[Path]:
    """One pickle per shard (= per tfrecord) in the legacy reader's layout."""
    cache = open_cache(cache_path)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(len(cache.shards)):
        videos = [{
            "video": record["id"].encode(),
            "feature": np.frombuffer(record["rgb"], np.uint8).reshape(-1, 1024),
            "audio": np.frombuffer(record["audio"], np.uint8).reshape(-1, 128),
            "label": record["labels"].tolist(),
            "nframes": min(record["num_frames"], MAX_FRAMES),
        } for record in cache.shard(index)]
        paths.append(out / f"part{index:04d}.pkl")
        with open(paths[-1], "wb") as f:
            pickle.dump(videos, f, protocol=2)
    return paths


def legacy_dequantize(features: np.ndarray) -> np.ndarray:
    return features * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


def legacy_padded(features: np.ndarray) -> np.ndarray:
    out = np.zeros((MAX_FRAMES, features.shape[1]))
    out[: len(features)] = features
    return out


def legacy_sample(video: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb [300, 1024], audio [300, 128], multi-hot [3862] (float64) of one legacy video dict."""
    nframes = video["nframes"]
    rgb = legacy_dequantize(video["feature"].astype(float)[:nframes])
    audio = legacy_dequantize(video["audio"].astype(float)[:nframes])
    label = np.zeros(NUM_CLASSES)
    label[video["label"]] = 1.0
    return legacy_padded(rgb), legacy_padded(audio), label


def legacy_samples(paths: list[Path]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The legacy reader's samples, pickle after pickle."""
    for path in paths:
        with open(path, "rb") as f:
            videos = pickle.load(f)
        for video in videos:
            yield legacy_sample(video)


def legacy_read(paths: list[Path]) -> int:
    return sum(1 for _ in legacy_samples(paths))


def legacy_batched(paths: list[Path]) -> int:
    """Legacy samples fed as batches of 32: float32 arrays [N, ...] copied into paddle tensors, as
    the 2019 feeder turned them into float32 LoDTensors."""
    count, batch = 0, []
    for sample in legacy_samples(paths):
        batch.append(sample)
        if len(batch) == BATCH:
            count += legacy_tensors(batch)[0].shape[0]
            batch = []
    return count + (legacy_tensors(batch)[0].shape[0] if batch else 0)


def legacy_tensors(batch: list[tuple]) -> list[paddle.Tensor]:
    return [paddle.to_tensor(np.asarray(field, np.float32)) for field in zip(*batch)]


def dataset_read(cache_path: Path) -> int:
    """Float samples made in this process, as the legacy reader makes them."""
    dataset = YouTube8MFrames(open_cache(cache_path), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES, codes=False)
    return sum(1 for _ in dataset)


#: each loader run's figures, keyed (workers, codes, convert, paddle_workers)
FIGURES = LoaderFigures()


def loader_read(cache_path: Path, workers: int, codes: bool, convert: bool = True, paddle_workers: bool = False) -> int:
    """Batches of the model's float32 inputs: with ``codes``, uint8 batches made float here (the
    task's inputs step, :func:`features`; not with ``convert=False``: the batches as the loader
    delivers them); without, float32 batches made by the readers."""
    dataset = YouTube8MFrames(open_cache(cache_path), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES, codes=codes)

    def step(batch) -> int:
        if convert:
            features(batch["audio"], batch["mask"])
            features(batch["rgb"], batch["mask"])
        return batch["rgb"].shape[0]

    batches = make_loader(dataset, batch_size=BATCH, num_workers=workers, paddle_workers=paddle_workers)
    return FIGURES.run((workers, codes, convert, paddle_workers), batches, step)


def features_times(cache_path: Path, repeat: int = 5) -> dict[str, float]:
    """Best ms per batch of making the float32 rgb and audio features of uint8 batches already in
    memory: the task's step (padding rows zeroed by a scatter) and a broadcast multiply by the mask
    (the step before), with the same values."""
    dataset = YouTube8MFrames(open_cache(cache_path), num_classes=NUM_CLASSES, max_frames=MAX_FRAMES, codes=True)
    batches = list(make_loader(dataset, batch_size=BATCH, num_workers=0))

    def multiplied(codes, mask):
        values = codes.astype("float32")
        values.scale_(float(DEQUANTIZE_SCALE), float(DEQUANTIZE_BIAS))
        return values.multiply_(mask.unsqueeze(-1))

    ways = {"scatter into the padding rows (videotk)": features, "multiply by the mask": multiplied}
    for batch in batches[:2]:
        for key in ("rgb", "audio"):
            assert np.array_equal(features(batch[key], batch["mask"]).numpy(), multiplied(batch[key], batch["mask"]).numpy())
    times = {}
    for label, way in ways.items():
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            for batch in batches:
                way(batch["rgb"], batch["mask"])
                way(batch["audio"], batch["mask"])
            best = min(best, (time.perf_counter() - start) / len(batches))
        times[label] = best * 1e3
    return times


def rate(call) -> float:
    """Samples/s of one run of ``call`` (which returns the samples it made)."""
    start = time.perf_counter()
    samples = call()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--videos-per-file", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every method; the best is reported")
    parser.add_argument("--plain-malloc", action="store_true", help="keep glibc's default mmap thresholds")
    args = parser.parse_args()
    if not args.plain_malloc:
        from videotk.trainers.runtime import keep_large_buffers

        keep_large_buffers()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-loader-bench-"))
    try:
        make_sources(work / "src", args.files, args.videos_per_file)
        convert_youtube8m(work / "src", work / "cache", workers=1, overwrite=True)
        pickles = write_legacy_pickles(work / "cache", work / "legacy")
        cache_mb = sum(entry["bytes"] for entry in open_cache(work / "cache").shards) / 1e6
        print(f"{args.files * args.videos_per_file} videos of 120-300 frames ({cache_mb:.0f} MB quantized) in {work}; "
              f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; load {load()}")
        cache = work / "cache"
        methods = {
            "legacy pickle reader": lambda: rate(lambda: legacy_read(pickles)),
            f"legacy reader, b{BATCH} to tensors": lambda: rate(lambda: legacy_batched(pickles)),
            "videotk dataset, float samples": lambda: rate(lambda: dataset_read(cache)),
            f"DataLoader 0 workers, uint8, b{BATCH}": lambda: rate(lambda: loader_read(cache, 0, True)),
            f"DataLoader 2 workers, uint8, b{BATCH}": lambda: rate(lambda: loader_read(cache, 2, True)),
            f"DataLoader 0 workers, uint8 batches only, b{BATCH}": lambda: rate(lambda: loader_read(cache, 0, True, False)),
            f"DataLoader 2 workers, uint8 batches only, b{BATCH}": lambda: rate(lambda: loader_read(cache, 2, True, False)),
            f"DataLoader 0 workers, float, b{BATCH}": lambda: rate(lambda: loader_read(cache, 0, False)),
            f"DataLoader 2 workers, float, b{BATCH}": lambda: rate(lambda: loader_read(cache, 2, False)),
            f"Paddle's DataLoader workers, 2, uint8, b{BATCH}": lambda: rate(lambda: loader_read(cache, 2, True, True, True)),
            f"Paddle's DataLoader workers, 2, uint8 batches only, b{BATCH}":
                lambda: rate(lambda: loader_read(cache, 2, True, False, True)),
        }

        def report(round_, figures, gain):
            print(f"round {round_ + 1}: load {load()}, two busy processes {gain:.2f}x; "
                  + ", ".join(f"{label} {value:.0f}" for label, value in figures.items()), flush=True)

        rates, gains = interleaved(methods, args.rounds, report)
        for label, values in rates.items():
            print(f"{label:<38} {max(values):8.0f} samples/s  (best of {len(values)})")
        zero, two = rates[f"DataLoader 0 workers, uint8, b{BATCH}"], rates[f"DataLoader 2 workers, uint8, b{BATCH}"]
        print(f"two busy processes: {median(gains):.2f}x (rounds: {' '.join(f'{g:.2f}' for g in gains)})")
        print(f"2 workers / 0 workers, uint8 hand-over: {ratios(two, zero)}  (target >= 1.5)")
        print(f"2 workers / 0 workers, uint8 batches only: "
              f"{ratios(rates[f'DataLoader 2 workers, uint8 batches only, b{BATCH}'], rates[f'DataLoader 0 workers, uint8 batches only, b{BATCH}'])}")
        steady = FIGURES.after_first
        two_steady, zero_steady = steady[2, True, True, False], steady[0, True, True, False]
        print(f"2 workers / 0 workers, uint8 hand-over, after the first batch: {ratios(two_steady, zero_steady)}"
              f"  ({max(two_steady):.0f} / {max(zero_steady):.0f} samples/s)  (target >= 1.5)")
        print(f"2 workers / 0 workers, uint8 batches only, after the first batch: "
              f"{ratios(steady[2, True, False, False], steady[0, True, False, False])}")
        start, busy = FIGURES.start_and_cores()
        print(f"{start}\n{busy}")
        print(f"Paddle's 2 workers / 0 workers, uint8 hand-over, after the first batch: "
              f"{ratios(steady[2, True, True, True], zero_steady)}")
        print(f"Paddle's 2 workers / 0 workers, uint8 batches only, after the first batch: "
              f"{ratios(steady[2, True, False, True], steady[0, True, False, False])}")
        print(f"2 workers / 0 workers, float hand-over, after the first batch: "
              f"{ratios(steady[2, False, True, False], steady[0, False, True, False])}")
        print(f"2 workers / 0 workers, float hand-over: "
              f"{ratios(rates[f'DataLoader 2 workers, float, b{BATCH}'], rates[f'DataLoader 0 workers, float, b{BATCH}'])}")
        for label, ms in features_times(cache).items():
            print(f"float32 features of a uint8 batch, {label}: {ms:.1f} ms (best of 5)")
        print(f"videotk dataset / legacy:               {ratios(rates['videotk dataset, float samples'], rates['legacy pickle reader'])}")
        print(f"DataLoader 0 workers / legacy b{BATCH}:     {ratios(zero, rates[f'legacy reader, b{BATCH} to tensors'])}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
