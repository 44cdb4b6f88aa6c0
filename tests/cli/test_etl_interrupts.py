"""Ctrl-C ends convert / decode with exit status 130 and one line saying what was kept, in this
process or on a local Dask cluster, leaving no process behind; running again resumes to the cache
an uninterrupted run makes."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.formats import open_cache

VTK = str(Path(sys.executable).parent / "vtk")
MESSAGE = re.compile(r"interrupted: (\d+) of (\d+) shards are finished and kept in (.+); "
                     r"run the same command again to resume")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Inputs of many small tasks (120 files), so that a run is still going well after its first
    task is done, even when the machine is busy."""
    from videotk.pipelines.synth_kinetics import synth_kinetics
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    root = tmp_path_factory.mktemp("interrupts")
    synth_youtube8m(root / "yt8m", num_files=120, videos_per_file=2, min_frames=100, max_frames=300, seed=6)
    synth_kinetics(root / "kinetics", num_classes=2, clips_per_class=5, duration=1.0, width=96, height=64, seed=7)
    return {"convert": ["convert", "youtube8m", "--src", str(root / "yt8m")],
            "decode": ["decode", "kinetics", "--src", str(root / "kinetics"), "--videos-per-shard", "1",
                       "--short-side", "64"]}


def live_processes(group: int) -> list[str]:
    """The processes of process group ``group`` that still run (a zombie waiting for init does not)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        state, _, pgrp = fields.split()[:3]
        if int(pgrp) == group and state != "Z":
            found.append(f"{stat.parent.name} {name.split('(', 1)[1]}")
    return found


def interrupted_run(command: list[str], out: Path) -> subprocess.CompletedProcess:
    """Run ``command``; once its first task is journalled, press Ctrl-C (SIGINT to its whole
    process group, as a terminal does)."""
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal, deadline = out / ".journal", time.monotonic() + 120
    while not (journal.is_dir() and any(journal.glob("part-*.json"))):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while live_processes(process.pid):
        assert time.monotonic() < deadline, f"left running: {live_processes(process.pid)}"
        time.sleep(0.05)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("job, workers", [("convert", 1), ("convert", 2), ("decode", 1), ("decode", 2)])
def test_ctrl_c_keeps_finished_shards_and_resumes(tmp_path, sources, job, workers):
    out = tmp_path / "cache"
    command = [VTK, *sources[job], "--out", str(out), "--workers", str(workers), "--quiet"]
    result = interrupted_run(command, out)
    assert result.returncode == 130, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    finished, total, where = MESSAGE.fullmatch(line).groups()
    assert 0 < int(finished) < int(total) and where == str(out)
    assert not (out / "manifest.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: " in resumed.stdout
    whole = CliRunner().invoke(cli, [*sources[job], "--out", str(tmp_path / "whole"), "--workers", "1", "--quiet"])
    assert whole.exit_code == 0, whole.output
    assert [s["sha256"] for s in open_cache(out).shards] == [s["sha256"] for s in open_cache(tmp_path / "whole").shards]
