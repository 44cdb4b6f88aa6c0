"""``train.amp`` and ``train.sync_bn`` on this CPU build of Paddle.

Paddle's automatic mixed precision runs on GPUs (and XPUs, custom devices) only:
``paddle.amp.auto_cast`` warns and leaves a CPU run in float32, and the CPU build has no bfloat16
matmul kernel to run a model in bfloat16 by hand (both checked below). So on a CPU a run with
``train.amp`` trains in float32 and says so once; likewise ``train.sync_bn``, since Paddle's
SyncBatchNorm needs GPUs. A value neither key takes is a ConfigError naming the key.
"""

import math
from pathlib import Path

import paddle
import pytest
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.trainers import runtime
from videotk.trainers.config import load_config
from videotk.trainers.logs import LOG_FILE
from videotk.trainers.loop import build_model, train

from .test_tasks import youtube8m_cache

SMALL = ["model.num_classes=10", "data.max_frames=30", "train.epochs=1", "train.batch_size=4", "train.log_every=1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return youtube8m_cache(tmp_path_factory.mktemp("yt8m"))


def run(cache: Path, save_dir: Path, model: str, *overrides: str) -> tuple[dict, list[str]]:
    notices = []

    def keep(event):
        if event["event"] == "notice":
            notices.append(event["message"])

    result = train(load_config(model, f"{model}_tiny", [*SMALL, *overrides]), cache, save_dir=save_dir, callback=keep)
    return result, notices


def test_the_cpu_build_runs_no_mixed_precision():
    paddle.set_device("cpu")
    layer = paddle.nn.Linear(8, 3)
    with (pytest.warns(UserWarning, match="amp_guard can only be enabled on CUDAPlace"),
          paddle.amp.auto_cast(level="O1", dtype="bfloat16")):
        assert layer(paddle.randn([2, 8])).dtype == paddle.float32
    with pytest.raises(RuntimeError, match="kernel `matmul` is not registered"):
        paddle.matmul(paddle.randn([2, 8]).astype("bfloat16"), paddle.randn([8, 3]).astype("bfloat16"))


def test_amp_on_a_cpu_trains_in_float32_and_says_so_once(tmp_path, cache):
    plain, _ = run(cache, tmp_path / "fp32", "attention_lstm")
    mixed, notices = run(cache, tmp_path / "amp", "attention_lstm", "train.amp=O1", "train.amp_dtype=bfloat16")
    said = [n for n in notices if n.startswith("train.amp")]
    assert said == [("train.amp O1 (bfloat16) has no effect on a CPU: Paddle runs mixed precision on GPUs only "
                     "(its CPU build has no float16 or bfloat16 matrix products); this run trains in float32")]
    assert said[0] in (tmp_path / "amp" / LOG_FILE).read_text()
    losses = [h["loss"] for h in mixed["history"]]
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert losses == [h["loss"] for h in plain["history"]]
    assert load_config("attention_lstm", tmp_path / "amp" / "config.yaml").train.amp == "O1"


def test_sync_bn_on_a_cpu_keeps_each_rank_s_batch_statistics_and_says_so_once(tmp_path, cache):
    _, notices = run(cache, tmp_path / "bn", "nextvlad", "train.sync_bn=true", "data.num_samples=10")
    said = [n for n in notices if n.startswith("train.sync_bn")]
    assert said == [("train.sync_bn has no effect on a CPU: Paddle's SyncBatchNorm needs GPUs, so each rank "
                     "normalises its 6 batch-norm layers with its own batch statistics")]
    assert said[0] in (tmp_path / "bn" / LOG_FILE).read_text()


def test_sync_bn_names_a_model_without_batch_norm():
    model = build_model(load_config("attention_lstm", "attention_lstm_tiny"))
    same, notice = runtime.sync_batch_norm(model, enabled=True, device="cpu")
    assert same is model
    assert notice == "train.sync_bn: AttentionLSTM has no batch-norm layers; nothing to synchronise"
    assert runtime.sync_batch_norm(model, enabled=False, device="cpu") == (model, None)


def test_a_bad_amp_value_ends_vtk_train_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["train", "attention_lstm", "--config", "attention_lstm_tiny", "--shards",
                                      str(tmp_path), "-o", "train.amp=O3"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: config key train.amp: 'O3' is not null or one of 'O1', 'O2'"]
