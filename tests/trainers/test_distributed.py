"""Data-parallel training under ``python -m paddle.distributed.launch`` with two CPU ranks (gloo).

A small driver, written next to the run, calls the real ``vtk train`` in each rank and records
what the rank did: the cache indices of every batch it trained on, the files it created or wrote
under ``--save-dir`` (Python's audit hook sees every open for writing, mkdir, rename and removal)
and its final weights. The test then checks that

- both replicas end with the same weights, equal (within 1e-5) to those of one process trained on
  the same global batches: rank 0's and rank 1's batches of each step put together, since the mean
  of the two ranks' gradients (what DataParallel's all-reduce gives) is the gradient of the mean
  loss over both batches;
- every record is read exactly once per epoch across the 2 ranks x 2 DataLoader workers;
- only rank 0 writes checkpoints, train.log, metrics.jsonl and curves;
- ``--resume latest`` under the launcher continues from epoch 0's checkpoint to the same weights
  and the same batches as the uninterrupted run.

Model: Attention LSTM's tiny config, which has no batch norm, with dropout off (dropout masks are
drawn per rank, so a single process could not draw the same ones).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from videotk.trainers import runtime
from videotk.trainers.config import load_config
from videotk.trainers.loop import build_model
from videotk.trainers.tasks import make_task

RANKS, WORKERS, BATCH, EPOCHS, RECORDS = 2, 2, 2, 2, 16
OVERRIDES = ["model.num_classes=10", "model.drop_rate=0.0", "data.max_frames=30", f"train.num_workers={WORKERS}",
             f"train.batch_size={BATCH}", f"train.epochs={EPOCHS}", "train.log_every=1"]

DRIVER = '''
"""Runs `vtk ARGS` in this rank; writes OUT/rank<N>.json (batches, losses, writes) and OUT/weights.<N>.pdparams."""
import json
import os
import sys
from pathlib import Path

import paddle

from videotk.cli.main import cli
from videotk.trainers import runtime
from videotk.trainers.tasks.youtube8m import YouTube8MTask

out, save_dir, args = Path(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3:]
rank = runtime.rank()
batches, losses, writes, models = [], [], [], []
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def audit(event, args):
    if event == "open":
        path, mode, flags = args
        if not (isinstance(mode, str) and any(c in mode for c in "wax+")) and not (flags or 0) & WRITING:
            return
    elif event not in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"):
        return
    path = args[0]
    if isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(save_dir):
        writes.append(os.path.relpath(os.path.abspath(os.fsdecode(path)), save_dir))


trained_step = YouTube8MTask.step


def recorded_step(self, model, batch):
    batches.append(batch["index"].numpy().tolist())
    step = trained_step(self, model, batch)
    losses.append(float(step.loss))
    return step


wrap = runtime.data_parallel


def kept(model):
    models.append(model)
    return wrap(model)


YouTube8MTask.step = recorded_step
runtime.data_parallel = kept
sys.addaudithook(audit)
cli.main(args=args, prog_name="vtk", standalone_mode=False)
paddle.save(models[-1].state_dict(), str(out / f"weights.{rank}.pdparams"))
(out / f"rank{rank}.json").write_text(json.dumps({"batches": batches, "losses": losses, "writes": writes}))
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """16 YouTube-8M videos of 5-30 frames and 10 classes, in 2 shards."""
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    root = tmp_path_factory.mktemp("yt8m")
    synth_youtube8m(root / "raw", num_files=2, videos_per_file=RECORDS // 2, num_classes=10, min_frames=5,
                    max_frames=30, seed=5)
    convert_youtube8m(root / "raw", root / "cache", workers=1)
    return root / "cache"


def launch(tmp_path: Path, name: str, cache: Path, save_dir: Path, *extra: str) -> list[dict]:
    """Run ``vtk train`` on 2 CPU ranks; each rank's record, its weights under ``"weights"``."""
    out = tmp_path / name
    out.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    overrides = [arg for o in OVERRIDES for arg in ("-o", o)]
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(RANKS),
               "--log_dir", str(out / "log"), str(driver), str(out), str(save_dir),
               "train", "attention_lstm", "--config", "attention_lstm_tiny", "--shards", str(cache),
               "--save-dir", str(save_dir), "--quiet", *overrides, *extra]
    env = {**os.environ, "PADDLE_DISTRI_BACKEND": "gloo"}  # what the launcher picks on a CPU build
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((out / "log").glob("workerlog.*")))
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{logs}"
    ranks = []
    for rank in range(RANKS):
        record = json.loads((out / f"rank{rank}.json").read_text())
        record["weights"] = paddle.load(str(out / f"weights.{rank}.pdparams"))
        ranks.append(record)
    return ranks


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


def single_process_weights(cache: Path, steps: list[list[int]]) -> tuple[dict, list[float]]:
    """Weights and losses of one process trained, with the same config and seed, on the global
    batches ``steps`` (cache indices per step, epoch after epoch)."""
    config = load_config("attention_lstm", "attention_lstm_tiny", [*OVERRIDES, f"train.batch_size={BATCH * RANKS}"])
    task = make_task(config)
    data = task.open(cache)
    dataset = task.dataset(data, train=True)
    runtime.prepare("cpu", cpu_threads=1, num_workers=0, seed=config.train.seed)
    model = build_model(config)
    scheduler = config.lr_scheduler.build(config.optimizer.learning_rate, BATCH * RANKS)
    optimizer = config.optimizer.build(task.trained_layer(model), scheduler)
    model.train()
    losses, per_epoch = [], len(steps) // EPOCHS
    for number, indices in enumerate(steps, 1):
        samples = [dataset.sample(i, data[i]) for i in indices]  # no random frame sampling in this model
        batch = {key: paddle.to_tensor(np.stack([s[key] for s in samples])) for key in samples[0]}
        loss = task.step(model, batch).loss
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
        if number % per_epoch == 0 and not config.lr_scheduler.per_batch:
            scheduler.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}, losses


def test_two_cpu_ranks_train_one_model_read_each_record_once_and_resume(tmp_path, cache):
    save_dir = tmp_path / "run"
    ranks = launch(tmp_path, "fresh", cache, save_dir)
    first, second = ranks

    # the replicas are one model
    assert max_difference(first["weights"], second["weights"]) == 0.0

    # every record once per epoch across 2 ranks x 2 workers; ranks run the same number of steps
    assert len(first["batches"]) == len(second["batches"])
    per_epoch = len(first["batches"]) // EPOCHS
    assert per_epoch == RECORDS // (RANKS * BATCH)
    for epoch in range(EPOCHS):
        span = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        read = [i for rank in ranks for batch in rank["batches"][span] for i in batch]
        assert sorted(read) == list(range(RECORDS)), f"epoch {epoch}"
    assert first["batches"][:per_epoch] != first["batches"][per_epoch:]  # shuffled anew each epoch

    # one process fed the same global batches ends with the same weights and mean losses
    steps = [a + b for a, b in zip(first["batches"], second["batches"])]
    weights, losses = single_process_weights(cache, steps)
    assert max_difference(first["weights"], weights) < 1e-5
    mean_losses = [(a + b) / 2 for a, b in zip(first["losses"], second["losses"])]
    np.testing.assert_allclose(mean_losses, losses, rtol=1e-5)

    # only rank 0 writes: checkpoints, logs, metrics and curves are its files, its losses
    assert second["writes"] == []
    written = set(first["writes"])
    for name in ("train.log", "metrics.jsonl", "curves.png", "config.yaml", "epoch_000/model.pdparams",
                 "epoch_001/model.pdparams"):
        assert name in written, name
    assert sorted(p.name for p in save_dir.iterdir()) == ["config.yaml", "curves.png", "epoch_000", "epoch_001",
                                                         "metrics.jsonl", "train.log"]
    logged = [json.loads(line) for line in (save_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logged if r["event"] == "step"] == pytest.approx(first["losses"], rel=1e-6)
    assert [r["epoch"] for r in logged if r["event"] == "epoch"] == [0, 1]
    lines = (save_dir / "train.log").read_text().splitlines()
    assert sum(" done " in line for line in lines) == EPOCHS

    # --resume latest under the launcher: from epoch 0's checkpoint to the same end
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(save_dir / "epoch_000", resumed_dir / "epoch_000")
    resumed = launch(tmp_path, "resume", cache, resumed_dir, "--resume", "latest")
    assert [r["batches"] for r in resumed] == [r["batches"][per_epoch:] for r in ranks]
    assert max_difference(resumed[0]["weights"], resumed[1]["weights"]) == 0.0
    assert max_difference(resumed[0]["weights"], first["weights"]) < 1e-6
    assert resumed[1]["writes"] == []
    assert (resumed_dir / "epoch_001" / "model.pdparams").is_file()


def test_gpus_on_the_cpu_build_ends_in_one_line(tmp_path):
    from click.testing import CliRunner

    from videotk.cli.main import cli

    base = ["train", "attention_lstm", "--config", "attention_lstm_tiny", "--shards", str(tmp_path)]
    for extra, line in [
        (["--gpus", "0,1"], ("Error: --gpus 0,1: this Paddle is the CPU build and has no GPU support; install "
                             "paddlepaddle-gpu (pip install -e '.[gpu]'), or leave out --gpus to train on the CPU")),
        (["--gpus", "0,0"], "Error: --gpus 0,0: expected distinct GPU ids separated by commas, e.g. --gpus 0,1,2,3"),
        (["--gpus", "0,1", "--device", "cpu"], "Error: --gpus 0,1 trains on GPUs: leave out --device cpu"),
    ]:
        result = CliRunner().invoke(cli, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [line]
    nested = CliRunner(env={"PADDLE_TRAINER_ID": "0"}).invoke(cli, [*base, "--gpus", "0,1"])
    assert nested.exit_code == 2
    assert nested.output.strip().splitlines() == [
        "Error: --gpus 0,1: this command already runs under paddle.distributed.launch; leave out --gpus"]


def test_gpus_starts_the_launcher_with_the_same_command():
    from videotk.cli.train import launcher_command

    command = launcher_command(["train", "tsn", "--gpus", "0,1,2,3", "--shards", "k400", "-o", "train.amp=O1",
                                "--save-dir", "out"], "0,1,2,3", "out")
    assert command[:7] == [sys.executable, "-m", "paddle.distributed.launch", "--gpus", "0,1,2,3", "--log_dir",
                           str(Path("out") / "launch")]
    assert Path(command[7]).name == "vtk"
    assert command[8:] == ["train", "tsn", "--shards", "k400", "-o", "train.amp=O1", "--save-dir", "out",
                           "--device", "gpu"]
    assert launcher_command(["train", "tsn", "--gpus=0,1"], "0,1", "output")[8:] == ["train", "tsn", "--device", "gpu"]
