"""Peak memory of one worker converting one large tfrecord, against the legacy tfrecord -> pickle.

Each conversion runs in its own process (``vtk convert youtube8m --workers 1`` runs the task in the
command's own process); the peak resident set size is read from the kernel after it exits. This
script itself imports no large library (the data is made by ``vtk synth`` in a subprocess), since a
child's reported peak includes what it inherited from its parent before exec.

    python benchmarks/worker_memory.py [--videos 1600] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LEGACY = """
import sys
sys.path.insert(0, {bench!r})
from convert_youtube8m import legacy_convert
from pathlib import Path
legacy_convert([Path({src!r})], Path({out!r}))
"""


def peak_rss_mb(command: list[str]) -> float:
    """Run ``command`` and return its peak resident set size in MB (Linux reports KiB)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed with status {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss * 1024 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1600)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    vtk = str(Path(sys.executable).parent / "vtk")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vtk-bench-"))
    try:
        subprocess.run([vtk, "synth", "youtube8m", "--out", str(work / "part"), "--files", "1", "--videos-per-file",
                        "200", "--min-frames", "250", "--max-frames", "300"], check=True, capture_output=True)
        part = work / "part" / "train0000.tfrecord"
        big = work / "src" / "train0000.tfrecord"
        big.parent.mkdir()
        with open(big, "wb") as f:
            for _ in range(max(1, args.videos // 200)):
                f.write(part.read_bytes())
        size = big.stat().st_size / 1e6
        print(f"one frame-level tfrecord of {size:.0f} MB ({args.videos} videos of 250-300 frames)")
        ours = peak_rss_mb([vtk, "convert", "youtube8m", "--src", str(big.parent), "--out", str(work / "cache"),
                            "--workers", "1", "--quiet"])
        bench = str(Path(__file__).resolve().parent)
        legacy = peak_rss_mb([sys.executable, "-c", LEGACY.format(bench=bench, src=str(big), out=str(work / "legacy"))])
        print(f"peak RSS, videotk worker:        {ours:7.0f} MB")
        print(f"peak RSS, legacy tf + pickle:    {legacy:7.0f} MB")
        print(f"ratio legacy / videotk:          {legacy / ours:7.2f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
