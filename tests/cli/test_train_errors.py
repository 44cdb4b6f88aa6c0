"""vtk train / eval / predict / export as a careless user drives them: every problem ends in one
line and the right exit status, never a traceback or a hang, and nothing of the user's is lost."""

import json
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

TINY = ["--config", "attention_lstm_tiny", "-q"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A YouTube-8M cache (10 classes) and a Kinetics cache of 6 classes."""
    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    root = tmp_path_factory.mktemp("train-errors")
    synth_youtube8m(root / "raw", num_files=2, videos_per_file=8, num_classes=10, min_frames=5, max_frames=20, seed=3)
    convert_youtube8m(root / "raw", root / "yt8m", workers=1)
    csv = synth_kinetics(root / "kraw", num_classes=6, clips_per_class=1, duration=0.6, width=64, height=48, seed=3)
    decode_kinetics(root / "kraw", root / "k6", annotations=csv, short_side=64, workers=1)
    return root


@pytest.fixture(scope="module")
def trained(caches, tmp_path_factory):
    """A finished 1-epoch attention_lstm run."""
    run = tmp_path_factory.mktemp("run") / "run"
    result = vtk("train", "attention_lstm", "--shards", str(caches / "yt8m"), "--epochs", "1", "--save-dir", str(run),
                 *TINY)
    assert result.exit_code == 0, result.output
    return run


def vtk(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output
    return errors[0]


def test_a_cache_of_the_wrong_kind(caches, tmp_path):
    result = vtk("train", "attention_lstm", "--shards", caches / "k6", "--save-dir", tmp_path, *TINY)
    assert_one_line_error(result, 2, "'kinetics' cache", "'youtube8m-frame'", "vtk convert youtube8m")


def test_a_folder_without_manifest(tmp_path):
    (tmp_path / "not-a-cache").mkdir()
    for command in (["train", "tsn", "--config", "tsn_tiny"], ["eval", "tsn", "--weights", tmp_path],
                    ["predict", "tsn", "--weights", tmp_path, "--out", tmp_path / "p.jsonl"]):
        result = vtk(*command, "--shards", tmp_path / "not-a-cache")
        assert_one_line_error(result, 2, "not a videotk cache", "manifest.json")


@pytest.mark.parametrize("override, needle", [
    ("model.drop_rate=[1]", "model.drop_rate: [1] is not a number"),
    ("train.epochs=two", "train.epochs: 'two' is not an integer"),
    ("data.max_frame=5", "unknown config key 'data.max_frame'"),
])
def test_overrides_of_the_wrong_type_or_name(caches, tmp_path, override, needle):
    result = vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--save-dir", tmp_path, "-o", override, *TINY)
    assert_one_line_error(result, 2, needle)


def test_labels_outside_the_models_classes(caches, tmp_path):
    result = vtk("train", "tsn", "--shards", caches / "k6", "--config", "tsn_tiny", "--save-dir", tmp_path, "-q")
    assert_one_line_error(result, 2, "6 classes", "model.num_classes is 4", "-o model.num_classes=6")
    assert not (tmp_path / "epoch_000").exists()


def test_a_missing_shard_is_named_before_anything_runs(caches, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(caches / "yt8m", damaged)
    shard = sorted((damaged / "shards").iterdir())[1]
    shard.unlink()
    result = vtk("train", "attention_lstm", "--shards", damaged, "--save-dir", tmp_path / "run", *TINY)
    assert_one_line_error(result, 2, shard.name, "missing", "vtk verify")


def test_another_runs_save_dir_is_refused_and_resumed_or_overwritten(caches, trained):
    epochs = ["--shards", caches / "yt8m", "--save-dir", trained, *TINY]
    assert_one_line_error(vtk("train", "attention_lstm", "--epochs", "1", *epochs), 2, "another run", "--resume latest")
    result = vtk("train", "attention_lstm", "--epochs", "1", "--resume", "latest", *epochs)
    assert_one_line_error(result, 2, "nothing to do", "--epochs")
    result = vtk("train", "attention_lstm", "--epochs", "2", "--resume", "latest", *epochs)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in trained.glob("epoch_*")) == ["epoch_000", "epoch_001"]
    events = [json.loads(line)["event"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert events.count("epoch") == 2 and "resumed from" in (trained / "train.log").read_text()


def test_resume_from_another_models_checkpoint(caches, trained, tmp_path):
    result = vtk("train", "attention_cluster", "--shards", caches / "yt8m", "--config", "attention_cluster_tiny",
                 "--resume", trained / "epoch_000", "--save-dir", tmp_path, "--epochs", "3", "-q")
    assert_one_line_error(result, 2, "trained with another config", "model.")


def test_overwrite_removes_only_the_runs_own_files(caches, tmp_path):
    run = tmp_path / "run"
    assert vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--epochs", "1", "--save-dir", run,
               *TINY).exit_code == 0
    (run / "notes.txt").write_text("mine")
    (run / "epoch_000" / "mine.txt").write_text("mine too")
    result = vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--epochs", "1", "--save-dir", run,
                 "--overwrite", *TINY)
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text() == "mine" and (run / "epoch_000" / "mine.txt").read_text() == "mine too"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # one epoch line: this run's only


def test_keep_last_keeps_the_newest_epochs(caches, tmp_path):
    result = vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--epochs", "3", "-o", "train.keep_last=1",
                 "--save-dir", tmp_path, *TINY)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == ["epoch_002"]


def test_an_exported_model_is_not_a_checkpoint(caches, trained, tmp_path):
    assert vtk("export", "attention_lstm", "--weights", trained / "epoch_000", "--out", tmp_path / "e").exit_code == 0
    result = vtk("export", "attention_lstm", "--weights", tmp_path / "e", "--out", tmp_path / "e2")
    line = assert_one_line_error(result, 2, "is an exported inference model", "checkpoint folder")
    assert "or an exported model folder" not in line
    result = vtk("eval", "attention_lstm", "--shards", caches / "yt8m", "--weights", tmp_path / "e",
                 "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output


def test_batch_larger_than_the_data_is_said(caches, tmp_path):
    result = vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--epochs", "1", "--batch-size", "64",
                 "--save-dir", tmp_path, *TINY)
    assert result.exit_code == 0, result.output
    assert "train.batch_size 64 is larger than the 16 training samples" in result.output


def test_print_config_and_plot(caches, trained, tmp_path):
    import yaml

    result = vtk("train", "tsm", "--config", "tsm_tiny", "-o", "optimizer.weight_decay=0", "--print-config")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["optimizer"]["weight_decay"] == 0.0 and printed["model"]["seg_num"] == printed["data"]["seg_num"]
    result = vtk("plot", trained, "--out", tmp_path / "c.png")
    assert result.exit_code == 0 and (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert_one_line_error(vtk("plot", tmp_path), 2, "no metrics.jsonl")


def bad_record_cache(caches, out: Path) -> Path:
    """A one-shard copy of the YouTube-8M cache whose third record claims more frames than it holds."""
    from dataclasses import asdict

    from videotk.formats import open_cache, open_shard_writer
    from videotk.formats.manifest import write_manifest

    source = open_cache(caches / "yt8m")
    records = list(source)
    records[2] = {**records[2], "num_frames": records[2]["num_frames"] + 3}
    (out / "shards").mkdir(parents=True)
    with open_shard_writer(out / "shards" / "part-00000-0bad.parquet", source.kind, source.columns) as writer:
        for record in records:
            writer.write(record)
        shard = asdict(writer.finalize())
    write_manifest(out, {**{k: v for k, v in source.manifest.items() if k != "schema_version"},
                         "shards": [{**shard, "sources": ["hand-made"]}]})
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_record_ends_the_run_with_its_reason_not_a_hang(caches, tmp_path, workers):
    damaged = bad_record_cache(caches, tmp_path / "bad")
    command = [sys.executable, "-m", "videotk", "train", "attention_lstm", "--shards", str(damaged), "--epochs", "1",
               "-o", f"train.num_workers={workers}", "--save-dir", str(tmp_path / "run"), *TINY]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "bad" in line and "record" in line and "rgb holds" in line


def test_a_seed_size_model_on_a_cpu_points_to_the_tiny_config():
    from videotk.trainers.config import load_config
    from videotk.trainers.loop import _notice_size, build_model

    config = load_config("attention_cluster")
    events = []
    _notice_size(config, build_model(config), "cpu", events.append)
    [event] = events
    assert "57.8 M parameters" in event["message"] and "batch 2048" in event["message"]
    assert "--config attention_cluster_tiny" in event["message"]


def test_ctrl_c_keeps_the_finished_epochs_and_says_how_to_resume(caches, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "videotk", "train", "attention_lstm", "--shards", str(caches / "yt8m"),
               "--epochs", "200", "-o", "train.num_workers=2", "--save-dir", str(run), *TINY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not (run / "epoch_001" / "trainer.pdstate").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "--resume latest" in stderr and "kept in" in stderr
    kept = int(re.search(r"up to epoch_(\d+)", stderr).group(1))    # epochs are short: it may be past 1
    result = vtk("train", "attention_lstm", "--shards", caches / "yt8m", "--epochs", str(kept + 2), "--save-dir", run,
                 "--resume", "latest", *TINY)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("model, override, needle", [
    ("tsm", "data.seg_num=6", "data.seg_num: 6 contradicts model.seg_num 4"),
    ("tsm", "data.test.seg_num=7", "data.test.seg_num: 7 contradicts model.seg_num 4; tsm takes exactly 4"),
    ("stnet", "data.seglen=3", "data.seglen: 3 contradicts model.seglen 2"),
])
def test_contradicting_keys_are_refused_before_anything_runs(model, override, needle):
    assert_one_line_error(vtk("train", model, "--config", f"{model}_tiny", "-o", override, "--print-config"), 2, needle)
