"""convert / decode: usage errors are one line and exit 2, and no refusal or --overwrite deletes
a file the cache did not write."""

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import videotk.pipelines.kinetics  # noqa: F401  imported before a test runs as user nobody, who may not
import videotk.pipelines.youtube8m  # noqa: F401  be able to read Python's own files
from videotk.cli.main import cli
from videotk.formats import open_cache


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args), "--quiet"])


def assert_usage_error(result, *words):
    """Exit 2, one ``Error:`` line (the last one) holding ``words``, no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert [line for line in lines if line.startswith("Error:")] == [lines[-1]], result.output
    assert all(word in lines[-1] for word in words), lines[-1]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def unreadable(path: Path):
    """``path`` (a folder or file) made unreadable; as root, by running the block as user nobody."""
    mode = path.stat().st_mode
    path.chmod(0)
    root = os.geteuid() == 0
    try:
        if root:
            os.seteuid(65534)
        yield
    finally:
        if root:
            os.seteuid(0)
        path.chmod(mode)


def test_an_unreachable_scheduler_fails_fast_and_creates_nothing(tmp_path, yt8m_frame_src):
    start = time.monotonic()
    result = run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", tmp_path / "c",
                 "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 15
    assert_usage_error(result, "--scheduler", "no dask.distributed scheduler could be reached within 5 s")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["255", "1"])
def test_odd_short_side_is_a_usage_error(tmp_path, kinetics_src, value):
    result = run("decode", "kinetics", "--src", kinetics_src, "--out", tmp_path / "c", "--short-side", value)
    assert_usage_error(result, "--short-side", "even")
    assert list(tmp_path.iterdir()) == []


def test_decode_of_a_folder_without_videos(tmp_path):
    (tmp_path / "src" / "abseiling").mkdir(parents=True)
    (tmp_path / "src" / "abseiling" / "notes.txt").write_text("no clips here")
    assert_usage_error(run("decode", "kinetics", "--src", tmp_path / "src", "--out", tmp_path / "c"), "no video files")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("command", ["convert", "decode"])
def test_out_that_is_a_file(tmp_path, yt8m_frame_src, kinetics_src, command):
    (tmp_path / "c").write_text("mine")
    src = yt8m_frame_src if command == "convert" else kinetics_src
    result = run(command, "youtube8m" if command == "convert" else "kinetics", "--src", src, "--out", tmp_path / "c")
    assert_usage_error(result, "--out", "is a file")
    assert (tmp_path / "c").read_text() == "mine"


@pytest.mark.parametrize("command", ["convert", "decode"])
def test_unreadable_src(yt8m_frame_src, kinetics_src, command):
    with tempfile.TemporaryDirectory() as work:  # outside pytest's private tmp folder, so other users can reach it
        work = Path(work)
        work.chmod(0o755)
        src = shutil.copytree(yt8m_frame_src if command == "convert" else kinetics_src, work / "src")
        with unreadable(src):
            result = run(command, "youtube8m" if command == "convert" else "kinetics", "--src", src, "--out", work / "c")
        assert_usage_error(result, f"--src {src}: cannot be read")
        assert not (work / "c").exists()


@pytest.fixture
def user_files(tmp_path, yt8m_frame_src):
    """A cache converted with Parquet, with the user's files beside it, in it and in its shards/."""
    out = tmp_path / "cache"
    assert run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", out, "--workers", 1).exit_code == 0
    (out / "notes.txt").write_text("mine")
    (out / "shards" / "README").write_text("mine")
    (out / "shards" / "part-00009-0123456789ab.parquet").write_text("mine, named like a shard")
    return out, {"notes.txt", "shards/README", "shards/part-00009-0123456789ab.parquet"}


def test_refusals_touch_nothing(tmp_path, yt8m_frame_src, kinetics_src, user_files):
    out, _ = user_files
    before = tree(out)
    for overwrite in ((), ("--overwrite",)):  # a folder that holds no cache is refused either way
        other = tmp_path / "other"
        other.mkdir(exist_ok=True)
        (other / "data.csv").write_text("mine")
        assert_usage_error(run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", other, *overwrite),
                           "holds no videotk cache (found data.csv)")
        assert tree(other) == {"data.csv": b"mine"}
    assert_usage_error(run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", out, "--format", "hdf5"),
                       "other options", "format: 'parquet' -> 'hdf5'", "--overwrite")
    assert_usage_error(run("decode", "kinetics", "--src", kinetics_src, "--out", out), "other options")
    (out / "manifest.json").write_text("{damaged")
    shutil.rmtree(out / ".journal")
    before["manifest.json"] = b"{damaged"
    assert_usage_error(run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", out, "--overwrite"),
                       "manifest.json", "nothing was changed")
    assert tree(out) == {k: v for k, v in before.items() if not k.startswith(".journal/")}


def test_overwrite_and_resume_keep_the_users_files(yt8m_frame_src, user_files):
    out, mine = user_files
    old_shards = {s["file"] for s in open_cache(out).shards}
    result = run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", out, "--format", "hdf5", "--workers", 1,
                 "--overwrite")
    assert result.exit_code == 0, result.output
    cache = open_cache(out)
    assert cache.manifest["format"] == "hdf5" and len(cache) == 24
    assert mine | {f"shards/{s['file']}" for s in cache.shards} | {"manifest.json", "errors.jsonl"} <= set(tree(out))
    assert not old_shards & {p.name for p in (out / "shards").iterdir()}
    assert all(tree(out)[name].startswith(b"mine") for name in mine)

    again = run("convert", "youtube8m", "--src", yt8m_frame_src, "--out", out, "--format", "hdf5", "--workers", 1)
    assert again.exit_code == 0 and "resumed: 3 tasks" in again.output
    assert mine <= set(tree(out))
    assert json.loads((out / "manifest.json").read_text())["shards"] == cache.shards
