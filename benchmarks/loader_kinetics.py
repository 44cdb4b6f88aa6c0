"""Kinetics training input: videotk's clip loader against the legacy pickle-per-clip reader.

    python benchmarks/loader_kinetics.py [--clips 96] [--duration 10] [--repeat 5] [--workdir DIR]

Synthetic 340x256 H.264 clips (``--duration`` s at 25 fps) are decoded once by ``vtk decode
kinetics`` into a Parquet cache of JPEG frames (short side 256, ``-q:v 3``), and the same JPEGs
are written in the legacy layout: one pickle per clip holding ``(id, label, [JPEG bytes of every
frame])``, with the highest pickle protocol (bytes stored as such: Python 3's protocol-2 pickles
of bytes load several times slower, which would flatter videotk). Both then make training
samples, in one process (the work of one DataLoader worker, OpenCV on one thread, glibc's malloc
set as ``vtk train`` sets it), page cache warm, best of ``--repeat`` rounds that run every method
once:

- TSN 8x1: 8 segments of 1 frame at random offsets, 224 random crop, random flip, ImageNet
  normalisation, ``[8, 3, 224, 224]`` float32.
- Non-local 8x8: 8 frames 8 apart from a random window, short side scaled to a random size in
  256..320, 224 random crop, random flip, normalisation, ``[3, 8, 224, 224]`` float32.

Methods:

- legacy: ``pickle.load`` of the clip's file, then what the 2019 readers did per sample: Pillow
  decodes each sampled JPEG (``Image.open(...).convert("RGB")``); TSN crops and flips the Pillow
  images and builds the float32 array frame by frame (``np.concatenate`` per frame), then
  subtracts the mean and divides by the std in place; Non-local resizes each frame with
  ``cv2.resize`` into a new array, transposes to ``[3, T, H, W]``, crops into a zeroed array,
  flips, converts to float32 and normalises. (The 2019 Non-local reader decoded every frame of
  the mp4 to use 8; on pickled JPEGs only the 8 sampled ones are decoded here, as the 2019 TSN
  reader did, which makes this baseline much faster than the original.)
- legacy pickles, videotk transforms: the same pickles, then videotk's own decoding, sampling and
  transforms (``ClipSampler.train_clip``): what the storage alone changes.
- videotk: ``KineticsClips`` over the cache (shard order and a 16-record shuffle buffer as in
  training), iterated directly (float32 samples, against the legacy ones), and through
  ``paddle.io.DataLoader`` (batch 8) with 0 and 2 worker processes (total samples/s): the readers
  hand over uint8 clips and this process normalises each batch (the task's inputs step, as
  training does; "batches only": without it, what the loader delivers), or, for comparison, the
  readers hand over float32 clips.
- DataLoader of ready samples: the same DataLoader over a dataset that only copies one finished
  sample: what Paddle's batching and passing of float32 batches between processes costs alone.

First it prints the time per frame of the JPEG decoders (OpenCV, Pillow, and simplejpeg when
installed) and of OpenCV's and Pillow's bilinear resize; then samples/s of each method and the
ratios videotk / legacy (target: >= 1.5x per worker), and 2 workers / 0 workers with the uint8
hand-over (target >= 1.5x) beside what the machine gives two busy processes in the same rounds
(``two_processes.py``).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import paddle
from PIL import Image

from videotk.formats import open_cache
from videotk.pipelines.ffmpeg import jpeg_size
from videotk.pipelines.kinetics import decode_kinetics
from videotk.pipelines.synth_kinetics import synth_kinetics
from videotk.trainers.clips import ClipSampler
from videotk.trainers.loader import make_loader
from videotk.trainers.runtime import keep_large_buffers
from videotk.trainers.tasks.kinetics import KineticsClips, normalized

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_processes import LoaderFigures, interleaved, load, median, ratios

CROP = 224
SHORT_SIDE = 256
JITTER = (256, 320)
BATCH = 8
SETTINGS = {
    "TSN 8x1": {"mode": "tsn", "seg_num": 8, "seglen": 1},
    "Non-local 8x8": {"mode": "dense", "num_frames_out": 8, "sample_rate": 8, "scale_jitter": JITTER},
}
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def make_cache(work: Path, clips: int, duration: float) -> Path:
    """``clips`` synthetic clips (8 distinct ones, copied under new names) decoded into a Parquet
    cache of JPEG frames at short side 256."""
    src = work / "src"
    synth_kinetics(src, num_classes=4, clips_per_class=2, duration=duration, width=340, height=256, seed=0)
    distinct = sorted(src.rglob("*.mp4"))
    for index in range(len(distinct), clips):
        source = distinct[index % len(distinct)]
        shutil.copy(source, source.parent / f"copy{index:05d}_{source.name}")
    decode_kinetics(src, work / "cache", short_side=SHORT_SIDE, workers=2, overwrite=True)
    return work / "cache"


def write_legacy_pickles(cache_path: Path, out: Path) -> list[Path]:
    """One pickle per clip: ``(id, label, [JPEG bytes per frame])``, as the 2019 readers took."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for record in open_cache(cache_path):
        paths.append(out / f"{record['id']}.pkl")
        with open(paths[-1], "wb") as f:
            pickle.dump((record["id"], record["label"], list(record["frames"])), f, protocol=pickle.HIGHEST_PROTOCOL)
    return paths


def legacy_load(path: Path) -> tuple[str, int, list[bytes]]:
    with open(path, "rb") as f:
        return pickle.load(f)


def legacy_image(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg)).convert("RGB")


def legacy_tsn(path: Path, seg_num: int = 8) -> np.ndarray:
    """``[seg_num, 3, 224, 224]``: the 2019 TSN reader's training sample of one pickled clip."""
    _, _, frames = legacy_load(path)
    duration = len(frames) // seg_num
    starts = [i * duration + random.randint(0, duration - 1) for i in range(seg_num)]
    images = [legacy_image(frames[start % len(frames)]) for start in starts]
    width, height = images[0].size
    left, top = random.randint(0, width - CROP), random.randint(0, height - CROP)
    images = [image.crop((left, top, left + CROP, top + CROP)) for image in images]
    if random.random() < 0.5:
        images = [image.transpose(Image.FLIP_LEFT_RIGHT) for image in images]
    array = np.array(images[0]).astype("float32").transpose((2, 0, 1)).reshape(1, 3, CROP, CROP) / 255
    for image in images[1:]:
        frame = np.array(image).astype("float32").transpose((2, 0, 1)).reshape(1, 3, CROP, CROP) / 255
        array = np.concatenate((array, frame))
    array -= MEAN.reshape(3, 1, 1)
    array /= STD.reshape(3, 1, 1)
    return array.reshape(seg_num, 3, CROP, CROP)


def legacy_nonlocal(path: Path, length: int = 8, rate: int = 8) -> np.ndarray:
    """``[3, 8, 224, 224]``: the 2019 Non-local reader's training sample of one pickled clip."""
    _, _, frames = legacy_load(path)
    start = random.randint(0, max(len(frames) - length * rate, 0))
    video = np.stack([np.asarray(legacy_image(frames[(start + i * rate) % len(frames)])) for i in range(length)])
    side = np.random.randint(*JITTER)
    _, height, width, _ = video.shape
    ratio = side / min(height, width)
    out_height, out_width = int(round(height * ratio)), int(round(width * ratio))
    scaled = np.zeros((length, out_height, out_width, 3), np.uint8)
    for i in range(length):
        scaled[i] = cv2.resize(video[i], (out_width, out_height))
    channels = np.transpose(scaled, [3, 0, 1, 2])
    top, left = np.random.randint(0, out_height - CROP), np.random.randint(0, out_width - CROP)
    cropped = np.zeros((3, length, CROP, CROP), np.uint8)
    cropped[:] = channels[:, :, top : top + CROP, left : left + CROP]
    if np.random.rand() > 0.5:
        cropped = cropped[:, :, :, ::-1]
    return (cropped.astype(np.float32) * (1 / 255) - MEAN.reshape(3, 1, 1, 1)) / STD.reshape(3, 1, 1, 1)


def pickles_with_videotk(paths: list[Path], sampler: ClipSampler, rng: np.random.Generator) -> int:
    """Samples from the legacy pickles through videotk's decoding, sampling and transforms."""
    for path in paths:
        _, _, frames = legacy_load(path)
        height, width = jpeg_size(frames[0])
        sampler.train_clip({"num_frames": len(frames), "height": height, "width": width, "frames": frames}, rng)
    return len(paths)


def clips(cache_path: Path, settings: dict, train: bool, normalized: bool = True) -> KineticsClips:
    return KineticsClips(open_cache(cache_path), ClipSampler(short_side=SHORT_SIDE, crop_size=CROP, **settings),
                         train=train, normalized=normalized)


def dataset_read(cache_path: Path, settings: dict, epoch: int) -> int:
    """Float32 samples made in this process, as the legacy readers make them."""
    dataset = clips(cache_path, settings, train=True)
    dataset.set_epoch(epoch)
    return sum(1 for _ in dataset)


#: each loader run's figures, keyed (workers, uint8, convert, paddle_workers)
FIGURES = LoaderFigures()


def loader_read(cache_path: Path, settings: dict, workers: int, uint8: bool, convert: bool = True,
                paddle_workers: bool = False) -> int:
    """Batches of the model's float32 clips: with ``uint8``, uint8 batches normalised here (the
    task's inputs step, :func:`normalized`; not with ``convert=False``: the batches as the loader
    delivers them); without, float32 batches made by the readers."""
    dataset = clips(cache_path, settings, train=True, normalized=not uint8)

    def step(batch) -> int:
        if convert:
            normalized(batch["frames"], dataset.sampler.layout)
        return batch["frames"].shape[0]

    batches = make_loader(dataset, batch_size=BATCH, num_workers=workers, paddle_workers=paddle_workers)
    return FIGURES.run((workers, uint8, convert, paddle_workers), batches, step)


class ReadyClips(paddle.io.IterableDataset):
    """``count`` copies of one sample, split across workers: the DataLoader's own cost."""

    def __init__(self, sample: dict, count: int):
        self.sample, self.count = sample, count

    def __iter__(self):
        info = paddle.io.get_worker_info()
        share = range(self.count) if info is None else range(info.id, self.count, info.num_workers)
        for _ in share:
            yield {key: value.copy() for key, value in self.sample.items()}


def bare_loader_read(sample: dict, count: int, workers: int) -> int:
    loader = paddle.io.DataLoader(ReadyClips(sample, count), batch_size=BATCH, num_workers=workers)
    return sum(batch["frames"].shape[0] for batch in loader)


def decoder_times(cache_path: Path, frames: int = 100) -> dict[str, float]:
    """Best ms per frame of each way to decode the cache's JPEGs to RGB and to resize a frame
    bilinearly to a 288 short side (simplejpeg only when installed)."""
    jpegs = open_cache(cache_path)[0]["frames"][:frames]
    image = np.asarray(legacy_image(jpegs[0]))
    ways = {
        "decode: OpenCV (videotk)": lambda jpeg: cv2.cvtColor(
            cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
        "decode: Pillow": lambda jpeg: np.asarray(legacy_image(jpeg)),
        "resize: OpenCV (videotk)": lambda jpeg: cv2.resize(image, (384, 288), interpolation=cv2.INTER_LINEAR),
        "resize: Pillow": lambda jpeg: Image.fromarray(image).resize((384, 288), Image.BILINEAR),
    }
    try:
        import simplejpeg

        ways["decode: simplejpeg"] = lambda jpeg: simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    except ImportError:
        pass
    times = {}
    for label, way in ways.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for jpeg in jpegs:
                way(jpeg)
            best = min(best, (time.perf_counter() - start) / len(jpegs))
        times[label] = best * 1e3
    return times


def rates_of(methods: dict, repeat: int) -> tuple[dict[str, list[float]], list[float]]:
    """Samples/s of each method in each of ``repeat`` rounds (a round runs every method once, so
    they all meet the same machine load), and the two-process gain of each round. ``methods``:
    label -> ``call(run)`` returning samples made."""
    def timed(call, run: list[int]):
        def go() -> float:
            start = time.perf_counter()
            samples = call(run[0])
            return samples / (time.perf_counter() - start)
        return go

    run = [0]

    def next_round(round_, figures, gain):
        run[0] += 1
        print(f"  round {round_ + 1}: load {load()}, two busy processes {gain:.2f}x", flush=True)

    return interleaved({label: timed(call, run) for label, call in methods.items()}, repeat, next_round)


def compare(name: str, settings: dict, cache: Path, pickles: list[Path], repeat: int) -> None:
    legacy_sample = legacy_tsn if settings["mode"] == "tsn" else legacy_nonlocal
    shuffled = list(pickles)
    sampler = ClipSampler(short_side=SHORT_SIDE, crop_size=CROP, **settings)
    sample = next(iter(clips(cache, settings, train=False)))

    def legacy(run: int) -> int:
        random.Random(run).shuffle(shuffled)
        for path in shuffled:
            legacy_sample(path)
        return len(shuffled)

    zero, two = f"videotk DataLoader, 0 workers, uint8, b{BATCH}", f"videotk DataLoader, 2 workers, uint8, b{BATCH}"
    print(f"{name}:")
    rates, gains = rates_of({
        "legacy pickles, 2019 reader": legacy,
        "legacy pickles, videotk decode + transforms":
            lambda run: pickles_with_videotk(pickles, sampler, np.random.default_rng(run)),
        "videotk KineticsClips (one worker)": lambda run: dataset_read(cache, settings, run),
        zero: lambda run: loader_read(cache, settings, 0, True),
        two: lambda run: loader_read(cache, settings, 2, True),
        f"videotk DataLoader, 0 workers, uint8 batches only, b{BATCH}": lambda run: loader_read(cache, settings, 0, True, False),
        f"videotk DataLoader, 2 workers, uint8 batches only, b{BATCH}": lambda run: loader_read(cache, settings, 2, True, False),
        f"videotk DataLoader, 2 workers, float, b{BATCH}": lambda run: loader_read(cache, settings, 2, False),
        f"Paddle's DataLoader workers, 2, uint8, b{BATCH}": lambda run: loader_read(cache, settings, 2, True, True, True),
        f"DataLoader of ready samples, 2 workers, b{BATCH}": lambda run: bare_loader_read(sample, len(pickles), 2),
    }, repeat)
    for label, values in rates.items():
        print(f"  {label:<46} {max(values):8.1f} samples/s  (best of {len(values)})")
    legacy_rates, mixed, ours = list(rates.values())[:3]
    print(f"  two busy processes: {median(gains):.2f}x (rounds: {' '.join(f'{g:.2f}' for g in gains)})")
    print(f"  2 workers / 0 workers, uint8 hand-over:        {ratios(rates[two], rates[zero])}  (target >= 1.5)")
    only = f"videotk DataLoader, {{}} workers, uint8 batches only, b{BATCH}"
    print(f"  2 workers / 0 workers, uint8 batches only:     {ratios(rates[only.format(2)], rates[only.format(0)])}")
    steady = {key: values[-repeat:] for key, values in FIGURES.after_first.items()}
    print(f"  2 workers / 0 workers, uint8, after the first batch: "
          f"{ratios(steady[2, True, True, False], steady[0, True, True, False])}"
          f"  ({max(steady[2, True, True, False]):.0f} / {max(steady[0, True, True, False]):.0f} samples/s)"
          f"  (target >= 1.5)")
    start, busy = FIGURES.start_and_cores(last=repeat)
    print(f"  {start}\n  {busy}")
    print(f"  Paddle's 2 workers / 0 workers, uint8, after the first batch: "
          f"{ratios(steady[2, True, True, True], steady[0, True, True, False])}")
    print(f"  2 workers float / 0 workers uint8:             "
          f"{ratios(rates[f'videotk DataLoader, 2 workers, float, b{BATCH}'], rates[zero])}")
    print(f"  videotk / legacy 2019 reader, per worker:      {ratios(ours, legacy_rates)}  (target >= 1.5)")
    print(f"  videotk / legacy pickles + videotk ops:        {ratios(ours, mixed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="runs per method; the best is reported")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    # glibc's allocator as vtk train sets it: without it every float32 sample above the dynamic
    # mmap threshold is mapped, page-faulted and unmapped, and the figures depend on what ran before
    keep_large_buffers()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-kinetics-loader-"))
    try:
        cache = make_cache(work, args.clips, args.duration)
        pickles = write_legacy_pickles(cache, work / "legacy")
        frames = sum(open_cache(cache).column("num_frames"))
        megabytes = sum(entry["bytes"] for entry in open_cache(cache).shards) / 1e6
        print(f"{len(pickles)} clips, {frames} JPEG frames at short side {SHORT_SIDE} ({megabytes:.0f} MB) in {work}; "
              f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
              f"OpenCV {cv2.__version__}, Pillow {Image.__version__}")
        print("one 256x340 frame, one core:")
        for label, milliseconds in decoder_times(cache).items():
            print(f"  {label:<46} {milliseconds:8.3f} ms")
        for name, settings in SETTINGS.items():
            compare(name, settings, cache, pickles, args.repeat)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
