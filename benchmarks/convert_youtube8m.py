"""YouTube-8M frame-level conversion: 1 and 2 local workers, copying the files, the legacy method.

Methods, each run once per round, rounds interleaved so that every method meets the same load:

- ``cp``: ``cp -r`` of the tfrecords to the same disk, the floor of any converter; and the same copy
  with every file fsynced, as the converter syncs every shard before naming it.
- videotk with 1 worker (this process) and with 2 workers (a local pool of 2 forked processes),
  end to end: listing, conversion, journal, checksums, manifest.
- videotk on 2 workers of a dask.distributed cluster that is already running (``--scheduler``),
  started once before the rounds (``--no-dask`` leaves it out).
- legacy (``--legacy``): the 2019 toolkit's tf2pkl method: TensorFlow's
  ``parse_single_sequence_example``, features decoded to uint8 through float32, one pickle of a
  list of dicts per tfrecord, in a process of its own (its time includes importing TensorFlow,
  about 2 s here, as a run of the legacy script does).

Each round also measures what the machine gives two busy processes at that moment
(:func:`two_processes.two_process_gain`, 2.0 on two idle cores): the 2-worker / 1-worker ratio is
printed beside it.

    python benchmarks/convert_youtube8m.py [--files 16] [--videos-per-file 200] [--rounds 3] [--workdir DIR]

The synthetic files are written once (2 distinct files, copied to --files); --workdir on a RAM
disk (/dev/shm) takes the disk out of the measurement. Prints each method's best time and MB/s,
then per round the ratios and the two-process gain, and their medians.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from two_processes import load, median, two_process_gain


def legacy_convert(files: list[Path], out: Path) -> None:
    import numpy as np
    import tensorflow as tf

    context = {"id": tf.io.FixedLenFeature([], tf.string), "labels": tf.io.VarLenFeature(tf.int64)}
    sequence = {name: tf.io.FixedLenSequenceFeature([], tf.string) for name in ("rgb", "audio")}

    @tf.function
    def parse(data):
        ctx, lists = tf.io.parse_single_sequence_example(data, context_features=context, sequence_features=sequence)
        rgb = tf.cast(tf.reshape(tf.io.decode_raw(lists["rgb"], tf.uint8), [-1, 1024]), tf.float32)
        audio = tf.cast(tf.reshape(tf.io.decode_raw(lists["audio"], tf.uint8), [-1, 128]), tf.float32)
        return ctx["id"], ctx["labels"].values, rgb, audio

    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        videos = []
        for data in tf.data.TFRecordDataset(str(path)):
            video_id, labels, rgb, audio = parse(data)
            videos.append({
                "video": video_id.numpy(),
                "feature": rgb.numpy().astype(np.uint8),
                "audio": audio.numpy().astype(np.uint8),
                "label": labels.numpy().tolist(),
                "nframes": min(int(rgb.shape[0]), 300),
            })
        with open(out / f"{path.stem}.pkl", "wb") as f:
            pickle.dump(videos, f, protocol=2)


def legacy_in_subprocess(files: list[Path], out: Path) -> None:
    """The legacy conversion in a process of its own, so TensorFlow's threads and memory stay out of
    the videotk runs that follow."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from pathlib import Path; "
            f"from convert_youtube8m import legacy_convert; "
            f"legacy_convert([Path(p) for p in {[str(f) for f in files]!r}], Path({str(out)!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, stderr=subprocess.DEVNULL)


def copy_files(src: Path, out: Path) -> None:
    subprocess.run(["cp", "-r", str(src), str(out)], check=True)


def copy_synced(src: Path, out: Path) -> None:
    """``cp`` and an fsync of every file copied."""
    copy_files(src, out)
    for path in out.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def timed(call, output: Path) -> float:
    """Seconds of one run of ``call``; ``output`` is removed afterwards (untimed)."""
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    shutil.rmtree(output, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--videos-per-file", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every method; the best time is reported")
    parser.add_argument("--legacy", action="store_true", help="also time the legacy TensorFlow + pickle method")
    parser.add_argument("--no-dask", action="store_true", help="leave out the running dask.distributed cluster")
    args = parser.parse_args()

    from videotk.pipelines.runner import local_cluster
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-bench-"))
    cluster = None
    try:
        made = synth_youtube8m(work / "src", num_files=2, videos_per_file=args.videos_per_file,
                               min_frames=120, max_frames=300, seed=0)
        files = made + [shutil.copy(made[i % 2], work / "src" / f"train{i:04d}.tfrecord") for i in range(2, args.files)]
        files = [Path(p) for p in files]
        size = sum(p.stat().st_size for p in files)
        for path in files:
            path.read_bytes()
        print(f"{len(files)} frame-level tfrecords, {args.files * args.videos_per_file} videos, {size / 1e6:.0f} MB "
              f"in {work}; {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
              f"load {load()}")
        src, out = work / "src", work / "out"
        methods = {
            "cp": lambda: copy_files(src, out),
            "cp + fsync": lambda: copy_synced(src, out),
            "videotk, 1 worker": lambda: convert_youtube8m(src, out, workers=1),
            "videotk, 2 workers": lambda: convert_youtube8m(src, out, workers=2),
        }
        if not args.no_dask:
            cluster = local_cluster(2)
            convert_youtube8m(files[0], work / "warm", scheduler=cluster.scheduler_address)  # workers import videotk
            methods["videotk, 2 running Dask workers"] = lambda: convert_youtube8m(
                src, out, scheduler=cluster.scheduler_address)
        if args.legacy:
            methods["legacy tf parse + pickle"] = lambda: legacy_in_subprocess(files, out)
        times: dict[str, list[float]] = {label: [] for label in methods}
        gains = []
        for round_ in range(args.rounds):
            gains.append(two_process_gain())
            for label, call in methods.items():
                times[label].append(timed(call, out))
            one, two = times["videotk, 1 worker"][-1], times["videotk, 2 workers"][-1]
            print(f"round {round_ + 1}: load {load()}, two busy processes {gains[-1]:.2f}x; "
                  f"1 worker {one:.2f} s, 2 workers {two:.2f} s ({one / two:.2f}x), cp {times['cp'][-1]:.2f} s "
                  f"({one / times['cp'][-1]:.2f}x), cp + fsync {times['cp + fsync'][-1]:.2f} s", flush=True)
        for label, runs in times.items():
            print(f"{label:<32} {min(runs):7.2f} s  {size / min(runs) / 1e6:8.1f} MB/s  (best of {len(runs)})")
        one, two = times["videotk, 1 worker"], times["videotk, 2 workers"]
        scaling = [a / b for a, b in zip(one, two)]
        print(f"2 workers / 1 worker, end to end: {median(scaling):5.2f}x median of rounds "
              f"({' '.join(f'{r:.2f}' for r in scaling)}); two busy processes: {median(gains):.2f}x "
              f"({' '.join(f'{g:.2f}' for g in gains)}); target >= 1.7x on a machine that gives 1.8x")
        for floor in ("cp", "cp + fsync"):
            ratios = [a / b for a, b in zip(one, times[floor])]
            print(f"1 worker / {floor}: {median(ratios):5.2f}x median of rounds ({' '.join(f'{r:.2f}' for r in ratios)}); "
                  "target <= 2.5x")
        if not args.no_dask:
            steady = [a / b for a, b in zip(one, times["videotk, 2 running Dask workers"])]
            print(f"2 running Dask workers / 1 worker: {median(steady):5.2f}x median of rounds")
        if args.legacy:
            legacy = [a / b for a, b in zip(times["legacy tf parse + pickle"], one)]
            print(f"1 worker / legacy throughput: {median(legacy):5.2f}x median of rounds (target >= 2)")
    finally:
        if cluster is not None:
            cluster.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
