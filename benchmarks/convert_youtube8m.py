"""YouTube-8M frame-level conversion: videotk against the legacy tfrecord -> pickle conversion.

The legacy method (the 2019 toolkit's tf2pkl) parses each record with TensorFlow's
``parse_single_sequence_example``, decodes the features to uint8 arrays through float32, and pickles
one list of dicts per tfrecord. Both run on the same files, one after the other, page cache warm; the legacy one in a process of its own (its time includes
importing TensorFlow, about 2 s here, as a run of the legacy script does).

    python benchmarks/convert_youtube8m.py [--files 32] [--videos-per-file 200] [--repeat 3] [--workdir DIR]

The synthetic files are written once (2 distinct files, copied to --files); --workdir on a RAM
disk (/dev/shm) takes the disk out of the measurement.

Prints seconds and MB/s for each method and the ratios the project tracks:
videotk (1 worker) / legacy, and videotk (2 workers) / videotk (1 worker). Two workers are timed
twice: end to end (starting a local Dask cluster of 2 processes, about 0.7 s here) and on a cluster
that is already running and has converted once (``--scheduler``): the steady-state throughput.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def timed(label: str, call, size: int, output: Path, repeat: int) -> float:
    """Best of ``repeat`` runs of ``call``, in seconds; ``output`` is removed after each run
    (untimed), so that no run pays for the page cache or RAM disk the previous one filled."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        runs.append(time.perf_counter() - start)
        shutil.rmtree(output, ignore_errors=True)
    seconds = min(runs)
    print(f"{label:<28} {seconds:7.2f} s  {size / seconds / 1e6:8.1f} MB/s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--videos-per-file", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best is reported")
    args = parser.parse_args()

    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.runner import local_cluster
    from videotk.pipelines.youtube8m import convert_youtube8m

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-bench-"))
    try:
        made = synth_youtube8m(work / "src", num_files=2, videos_per_file=args.videos_per_file,
                               min_frames=120, max_frames=300, seed=0)
        files = made + [shutil.copy(made[i % 2], work / "src" / f"train{i:04d}.tfrecord") for i in range(2, args.files)]
        files = [Path(p) for p in files]
        size = sum(p.stat().st_size for p in files)
        for path in files:
            path.read_bytes()
        print(f"{len(files)} frame-level tfrecords, {args.files * args.videos_per_file} videos, {size / 1e6:.0f} MB "
              f"in {work}; {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
        src, out = work / "src", work / "out"
        legacy = timed("legacy tf parse + pickle", lambda: legacy_in_subprocess(files, work / "legacy"), size,
                       work / "legacy", args.repeat)
        one = timed("videotk, 1 worker", lambda: convert_youtube8m(src, out, workers=1), size, out, args.repeat)
        two = timed("videotk, 2 workers (Dask)", lambda: convert_youtube8m(src, out, workers=2), size, out, args.repeat)
        cluster = local_cluster(2)
        convert_youtube8m(files[0], work / "warm", scheduler=cluster.scheduler_address)  # workers import videotk
        steady = timed("videotk, 2 running workers",
                       lambda: convert_youtube8m(src, out, scheduler=cluster.scheduler_address), size, out, args.repeat)
        cluster.close()
        hdf5 = timed("videotk, 1 worker, HDF5", lambda: convert_youtube8m(src, out, workers=1, fmt="hdf5"), size, out, args.repeat)
        print(f"ratio videotk 1 worker / legacy:      {legacy / one:5.2f}x  (target >= 2)")
        print(f"ratio videotk 2 workers / 1 worker:   {one / two:5.2f}x  end to end (target >= 1.7)")
        print(f"ratio videotk 2 running workers / 1:  {one / steady:5.2f}x  steady state")
        print(f"ratio videotk HDF5 / legacy:          {legacy / hdf5:5.2f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
