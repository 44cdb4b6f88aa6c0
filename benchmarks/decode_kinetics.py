"""Kinetics decoding: ``vtk decode kinetics`` against the bare ffmpeg command line.

The baseline runs, for every clip, the same filter chain the way a frame-extraction script does::

    ffmpeg -i clip.mp4 -vf fps=25,scale=<short side 256> -q:v 3 frames/%05d.jpg

with as many ffmpeg processes at once as videotk has workers. videotk decodes the same clips
through the same chain into a Parquet cache (end to end: Dask cluster start, decoding, shard
writing, checksums, manifest).

    python benchmarks/decode_kinetics.py [--clips 48] [--workers 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCALE = "scale=if(lte(iw\\,ih)\\,256\\,-2):if(lte(iw\\,ih)\\,-2\\,256)"


def make_clips(root: Path, count: int) -> list[Path]:
    """``count`` 10 s 340x256 clips in class folders (8 distinct clips, copied under new names)."""
    from videotk.pipelines.synth_kinetics import synth_kinetics

    synth_kinetics(root, num_classes=2, clips_per_class=4, duration=10.0, width=340, height=256, seed=0)
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
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from videotk.pipelines.kinetics import decode_kinetics

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-bench-"))
    try:
        clips = make_clips(work / "src", args.clips)
        print(f"{len(clips)} clips of 10 s, 340x256, 25 fps in {work}; {args.workers} workers; "
              f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
        start = time.perf_counter()
        bare_ffmpeg(clips, work / "frames", args.workers)
        bare = time.perf_counter() - start
        frames = sum(1 for _ in (work / "frames").rglob("*.jpg"))
        shutil.rmtree(work / "frames")
        print(f"bare ffmpeg to JPEG files     {bare:7.2f} s  {len(clips) / bare:6.2f} clips/s  ({frames} frames)")

        start = time.perf_counter()
        summary = decode_kinetics(work / "src", work / "cache", workers=args.workers,
                                  videos_per_shard=max(1, len(clips) // (4 * args.workers)))
        ours = time.perf_counter() - start
        print(f"vtk decode kinetics (Parquet) {ours:7.2f} s  {len(clips) / ours:6.2f} clips/s  "
              f"({summary.records} clips, {summary.failed} failed)")
        print(f"ratio videotk / bare ffmpeg throughput: {bare / ours:5.2f}x  (target >= 0.85)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
