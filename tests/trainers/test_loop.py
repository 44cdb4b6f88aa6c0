import re
import json

import numpy as np
import paddle
import pytest
from click.testing import CliRunner

from videotk.cli.main import cli
from videotk.models import list_models
from videotk.trainers.config import ConfigError, load_config
from videotk.trainers.loop import evaluate, export, predict, train

YOUTUBE8M_MODELS = ["attention_cluster", "attention_lstm", "nextvlad"]


@pytest.fixture(scope="module")
def yt8m_split(tmp_path_factory):
    """Train and held-out caches of one synthetic dataset (the same class prototypes)."""
    from videotk.pipelines.synth_youtube8m import synth_youtube8m
    from videotk.pipelines.youtube8m import convert_youtube8m

    root = tmp_path_factory.mktemp("yt8m-split")
    files = synth_youtube8m(root / "raw", num_files=5, videos_per_file=64, num_classes=20, seed=7)
    convert_youtube8m(root / "raw" / "train000[0-3].tfrecord", root / "train", workers=1)
    convert_youtube8m(files[4], root / "valid", workers=1)
    return root / "train", root / "valid"


def tiny(model, *overrides):
    return load_config(model, f"{model}_tiny", overrides)


def test_every_model_has_a_seed_config_and_a_tiny_one():
    for model in list_models():
        assert load_config(model).model.name == model
        assert load_config(model, f"{model}_tiny").model.name == model


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown config key 'train.epoch': train takes amp, amp_dtype, batch_size, cpu_threads, epochs"),
    ("trainer.epochs=3", "unknown config key 'trainer.epochs'"),
    ("train.epochs=0", "config key train.epochs: 0 is not an integer >= 1"),
    ("train.epochs=2.5", "config key train.epochs: 2.5 is not an integer >= 1"),
    ("train.cpu_threads=0", "config key train.cpu_threads: 0 is not null or an integer >= 1"),
    ("optimizer.name=sgdx", "config key optimizer.name: 'sgdx' is not one of adam, rmsprop, momentum"),
    ("optimizer.learning_rate=-1", "config key optimizer.learning_rate: -1 is not a number > 0"),
    ("model.drop_rate=[1]", "config key model.drop_rate: [1] is not a number"),
    ("model.dropout=0.5", "unknown config key 'model.dropout': model takes audio_dim"),
    ("lr_scheduler.milestones=[3, 1]", "milestones [3, 1] must increase"),
    ("train.epochs", "expected section.key=value"),
    ("train.amp=O3", "config key train.amp: 'O3' is not null or one of 'O1', 'O2'"),
    ("train.amp=true", "config key train.amp: True is not null or one of 'O1', 'O2'"),
    ("train.amp_dtype=float8", "config key train.amp_dtype: 'float8' is not one of 'float16', 'bfloat16'"),
    ("train.sync_bn=yes please", "config key train.sync_bn: 'yes please' is not true or false"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("attention_lstm", None, [override])


def test_overrides_are_parsed_as_yaml_and_the_model_must_match():
    config = load_config("nextvlad", None, ["optimizer.grad_clip=null", "model.cluster_size=64", "data.dequantize=true",
                                            "optimizer.weight_decay=0"])
    assert config.optimizer.grad_clip is None and config.model.arguments["cluster_size"] == 64
    assert config.data.dequantize is True
    assert config.optimizer.weight_decay == 0.0 and isinstance(config.optimizer.weight_decay, float)
    with pytest.raises(ConfigError, match="is a config for 'nextvlad', not 'attention_lstm'"):
        load_config("attention_lstm", "nextvlad")


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, yt8m_split):
    train_cache, _ = yt8m_split
    config = tiny("attention_lstm", "train.epochs=3", "lr_scheduler.milestones=[1]")
    whole = train(config, str(train_cache), save_dir=tmp_path / "whole")

    first = train(tiny("attention_lstm", "train.epochs=1", "lr_scheduler.milestones=[1]"), str(train_cache),
                  save_dir=tmp_path / "parts")
    resumed = train(config, str(train_cache), save_dir=tmp_path / "parts", resume=tmp_path / "parts" / "epoch_000")
    assert len(first["history"]) < len(resumed["history"]) == len(whole["history"])
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in whole["history"]]
    assert whole["history"][-1]["lr"] == pytest.approx(config.optimizer.learning_rate * 0.1)
    a = paddle.load(str(tmp_path / "whole" / "epoch_002" / "model.pdparams"))
    b = paddle.load(str(tmp_path / "parts" / "epoch_002" / "model.pdparams"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert (tmp_path / "whole" / "epoch_002" / "config.yaml").is_file()


@pytest.mark.parametrize("model, epochs", [("attention_cluster", 5), ("attention_lstm", 2), ("nextvlad", 1)])
def test_models_learn_the_synthetic_labels(tmp_path, yt8m_split, model, epochs):
    train_cache, valid_cache = yt8m_split
    result = train(tiny(model, f"train.epochs={epochs}"), str(train_cache), valid_shards=str(valid_cache),
                   save_dir=tmp_path)
    gaps = [result["metrics"][epoch]["gap"] for epoch in range(epochs)]
    assert gaps[-1] >= 0.7, gaps


def test_exported_model_predicts_the_same_scores(tmp_path, yt8m_split):
    train_cache, valid_cache = yt8m_split
    config = tiny("attention_lstm", "train.epochs=1")
    train(config, str(train_cache), save_dir=tmp_path / "run")
    checkpoint = tmp_path / "run" / "epoch_000"
    export(config, checkpoint, tmp_path / "exported")
    assert predict(config, str(valid_cache), checkpoint, tmp_path / "a.jsonl", top_k=5) == 64
    predict(config, str(valid_cache), tmp_path / "exported", tmp_path / "b.jsonl", top_k=5)
    a = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [x["id"] for x in a] == [x["id"] for x in b]
    assert [x["classes"] for x in a] == [x["classes"] for x in b]
    np.testing.assert_allclose([x["scores"] for x in a], [x["scores"] for x in b], atol=1e-5)
    metrics = evaluate(config, str(valid_cache), checkpoint)
    assert set(metrics) >= {"hit_at_one", "perr", "gap", "avg_loss"}


def test_cli_train_eval_predict_export(tmp_path, yt8m_split):
    train_cache, valid_cache = yt8m_split
    config = "attention_cluster_tiny"
    run = CliRunner().invoke(cli, ["train", "attention_cluster", "--shards", str(train_cache), "--config", config,
                                   "--epochs", "1", "--save-dir", str(tmp_path / "run"), "-q"])
    assert run.exit_code == 0, run.output
    assert re.search(r"epoch +0 done  loss [0-9.]+", run.output), run.output
    weights = str(tmp_path / "run" / "epoch_000")
    result = CliRunner().invoke(cli, ["eval", "attention_cluster", "--shards", str(valid_cache), "--weights", weights])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_examples"] == 64
    assert json.loads((tmp_path / "run" / "epoch_000" / "metrics.json").read_text())["num_examples"] == 64
    result = CliRunner().invoke(cli, ["export", "attention_cluster", "--weights", weights, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["predict", "attention_cluster", "--weights", str(tmp_path / "e"), "--shards",
                                      str(valid_cache), "--out", str(tmp_path / "p.jsonl"), "--topk", "3"])
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert len(first["classes"]) == 3 and first["scores"] == sorted(first["scores"], reverse=True)


@pytest.mark.parametrize("args, message", [
    (["-o", "train.epoch=1"], "unknown config key 'train.epoch'"),
    (["--device", "gpu"], "--device gpu"),
    (["--resume", "."], "not a checkpoint folder"),
])
def test_cli_train_usage_errors(tmp_path, yt8m_split, args, message):
    train_cache, _ = yt8m_split
    result = CliRunner().invoke(cli, ["train", "attention_lstm", "--shards", str(train_cache), "--config",
                                      "attention_lstm_tiny", "--save-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unknown_model_lists_close_matches():
    result = CliRunner().invoke(cli, ["train", "atention_lstm", "--shards", "."])
    assert result.exit_code == 2 and "did you mean attention_lstm" in result.output


def test_models_command_lists_every_model():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0
    assert [m["name"] for m in json.loads(result.stdout)] == list_models()
