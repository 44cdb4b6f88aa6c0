import json

import click
import pytest
from click.testing import CliRunner

from videotk.cli.main import cli


def all_commands(group: click.Group, prefix=()):
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.mark.parametrize("path", list(all_commands(cli)), ids=lambda p: " ".join(p) or "vtk")
def test_every_command_explains_itself(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output.splitlines()) > 4


def test_help_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys; from videotk.cli.main import cli\n"
            "try:\n    cli(['convert', 'youtube8m', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('tensorflow', 'paddle', 'dask', 'pyarrow', 'h5py', 'distributed') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip() == "[]"


@pytest.fixture(scope="module")
def converted(tmp_path_factory, yt8m_frame_src):
    out = tmp_path_factory.mktemp("inspect") / "cache"
    result = CliRunner().invoke(cli, ["convert", "youtube8m", "--src", str(yt8m_frame_src), "--out", str(out),
                                      "--workers", "1", "--quiet"])
    assert result.exit_code == 0
    return out


def test_inspect_text_json_and_plot(converted, tmp_path):
    text = CliRunner().invoke(cli, ["inspect", str(converted)])
    assert text.exit_code == 0
    assert "records  24" in text.output and "frames per video" in text.output and "labels" in text.output

    result = CliRunner().invoke(cli, ["inspect", str(converted), "--json", "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["records"] == 24 and info["shards"] == 3
    assert info["frames_per_video"]["min"] >= 5 and info["frames_per_video"]["max"] <= 40
    assert sum(info["labels"]["per_class"].values()) == info["labels"]["per_video"]["total"]
    png = (tmp_path / "h.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_verify_names_a_damaged_shard(converted, tmp_path):
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(converted, copy)
    assert CliRunner().invoke(cli, ["verify", str(copy)]).exit_code == 0
    shard = sorted((copy / "shards").iterdir())[1]
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["verify", str(copy)])
    assert result.exit_code == 1
    assert f"BAD {shard.name}: sha256" in result.output


def test_inspect_names_a_missing_shard_and_reports_the_rest(converted, tmp_path):
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(converted, copy)
    shard = sorted((copy / "shards").iterdir())[1]
    shard.unlink()
    result = CliRunner().invoke(cli, ["inspect", str(copy)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if "BAD" in line] == [
        f"BAD {shard.name}: missing (left out of the figures)"]
    assert "records  24" in result.output and "frames per video" in result.output
    info = json.loads(CliRunner().invoke(cli, ["inspect", str(copy), "--json"]).stdout)
    assert info["problems"] == [{"file": shard.name, "reason": "missing"}]
    assert info["frames_per_video"]["count"] == 16 and info["labels"]["per_video"]["count"] == 16


def test_inspect_and_verify_of_a_damaged_manifest(converted, tmp_path):
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(converted, copy)
    (copy / "manifest.json").write_text('{"schema_version": 1, "kind": "youtube8m-frame"}')
    for command in ("inspect", "verify"):
        result = CliRunner().invoke(cli, [command, str(copy)])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"{copy / 'manifest.json'}: no key 'format'" in result.output


def test_inspect_of_a_folder_that_is_not_a_cache(tmp_path):
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "not a videotk cache" in result.output


def test_demo_runs_the_main_job(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path), "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "converted 256 videos from 4 inputs into 4 shards" in result.output
    assert "\"gap\"" in result.output and "predictions.jsonl" in result.output
    assert "the clip shows:" in result.output
    assert "converted 16 clips" in result.output and "failed 5, missing 2" in result.output
    assert (tmp_path / "cache" / "kinetics" / "manifest.json").is_file()


@pytest.mark.parametrize("args", [
    ["synth", "youtube8m", "--segments", "--min-frames", "2", "--max-frames", "4"],
    ["synth", "kinetics", "--classes", "3", "--motion-pairs"],
    ["synth", "kinetics", "--size", "321x240"],
])
def test_synth_refuses_impossible_datasets_with_exit_2(tmp_path, args):
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Error" in result.output


def test_synth_commands_write_real_sources(tmp_path):
    result = CliRunner().invoke(cli, ["synth", "youtube8m", "--out", str(tmp_path / "y"), "--files", "2",
                                      "--videos-per-file", "3", "--level", "video"])
    assert result.exit_code == 0 and len(list((tmp_path / "y").glob("*.tfrecord"))) == 2
    result = CliRunner().invoke(cli, ["synth", "kinetics", "--out", str(tmp_path / "k"), "--classes", "2",
                                      "--clips-per-class", "1", "--duration", "0.4", "--size", "64x48", "--bad"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "k").rglob("*.mp4"))) == 2 + 5
    assert len((tmp_path / "k" / "kinetics.csv").read_text().splitlines()) == 1 + 2 + 5
