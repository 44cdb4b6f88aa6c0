"""Kinetics decoding: ``vtk decode kinetics`` against the bare ffmpeg command line.

The baseline runs, for every clip, the same filter chain the way a frame-extraction script does::

    ffmpeg -i clip.mp4 -vf fps=25,scale=<short side 256> -q:v 3 frames/%05d.jpg

with as many ffmpeg processes at once as videotk has workers. videotk decodes the same clips
through the same chain into a Parquet cache (end to end: starting the workers, decoding, shard
writing, checksums, manifest). The clips are 10 s, 340x256 at 30 fps (``--fps``), resampled to
25 fps.

The two run once per round, rounds interleaved, each round starting with the two-process gain of
the moment (``two_processes.py``): the ratio of throughputs is given per round and as the median.

    python benchmarks/decode_kinetics.py [--clips 64] [--workers 2] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_processes import interleaved, load, median, ratios

SCALE = "scale=if(lte(iw\\,ih)\\,256\\,-2):if(lte(iw\\,ih)\\,-2\\,256)"


def make_clips(root: Path, count: int, fps: float) -> list[Path]:
    """``count`` 10 s 340x256 clips at ``fps`` in class folders (8 distinct clips, copied under new
    names)."""
    from videotk.pipelines.synth_kinetics import synth_kinetics

    synth_kinetics(root, num_classes=2, clips_per_class=4, duration=10.0, fps=fps, width=340, height=256, seed=0)
    distinct = sorted(root.rglob("*.mp4"))
    for index in range(len(distinct), count):
        source = distinct[index % len(distinct)]
        shutil.copy(source, source.parent / f"copy{index:05d}_{source.name}")
    (root / "kinetics.csv").unlink()
    return sorted(root.rglob("*.mp4"))


def bare_ffmpeg(clips: list[Path], out: Path, workers: int) -> None:
    from videotk.pipelines.ffmpeg import ffmpeg_binary

    binary = ffmpeg_binary()

    def run(index: int) -> None:
        target = out / f"{index:05d}"
        target.mkdir(parents=True)
        subprocess.run([binary, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(clips[index]),
                        "-vf", f"fps=25,{SCALE}", "-q:v", "3", str(target / "%05d.jpg")], check=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(len(clips))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the synthetic clips")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from videotk.pipelines.kinetics import decode_kinetics

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-bench-"))
    try:
        clips = make_clips(work / "src", args.clips, args.fps)
        print(f"{len(clips)} clips of 10 s, 340x256, {args.fps:g} fps in {work}; {args.workers} workers; "
              f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; load {load()}")

        def bare() -> float:
            start = time.perf_counter()
            bare_ffmpeg(clips, work / "frames", args.workers)
            seconds = time.perf_counter() - start
            shutil.rmtree(work / "frames")
            return seconds

        def ours() -> float:
            start = time.perf_counter()
            summary = decode_kinetics(work / "src", work / "cache", workers=args.workers,
                                      videos_per_shard=max(1, len(clips) // (4 * args.workers)))
            seconds = time.perf_counter() - start
            assert summary.records == len(clips) and not summary.failed, summary
            shutil.rmtree(work / "cache")
            return seconds

        def report(round_, figures, gain):
            print(f"round {round_ + 1}: load {load()}, two busy processes {gain:.2f}x; bare ffmpeg "
                  f"{figures['bare']:.2f} s, vtk decode {figures['vtk']:.2f} s "
                  f"({figures['bare'] / figures['vtk']:.2f}x)", flush=True)

        times, gains = interleaved({"bare": bare, "vtk": ours}, args.rounds, report)
        print(f"bare ffmpeg to JPEG files     {min(times['bare']):7.2f} s  {len(clips) / min(times['bare']):6.2f} clips/s")
        print(f"vtk decode kinetics (Parquet) {min(times['vtk']):7.2f} s  {len(clips) / min(times['vtk']):6.2f} clips/s")
        print(f"two busy processes: {median(gains):.2f}x (rounds: {' '.join(f'{g:.2f}' for g in gains)})")
        print(f"ratio videotk / bare ffmpeg throughput: {ratios(times['bare'], times['vtk'])}  (target >= 0.95)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
