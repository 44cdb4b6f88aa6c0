import json

import numpy as np
import pytest

from videotk.trainers.config import load_config
from videotk.trainers.loop import evaluate, export, predict, predict_files, train

KINETICS_MODELS = ["tsn", "tsm", "stnet", "non_local"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Train and val caches of synthetic clips (4 classes), decoded at a 64-pixel short side."""
    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics

    root = tmp_path_factory.mktemp("kinetics-split")
    csv = synth_kinetics(root / "raw", num_classes=4, clips_per_class=4, duration=1.0, width=96, height=64)
    for split in ("train", "val"):
        decode_kinetics(root / "raw", root / split, annotations=csv, split=split, short_side=64, fps=12.5, workers=1)
    return root


def tiny(model, *overrides):
    return load_config(model, f"{model}_tiny", overrides)


@pytest.mark.parametrize("model", KINETICS_MODELS)
def test_kinetics_models_train_and_evaluate_per_clip_and_per_video(tmp_path, clips, model):
    result = train(tiny(model, "train.epochs=1"), str(clips / "train"), valid_shards=str(clips / "val"),
                   save_dir=tmp_path)
    metrics = result["metrics"][0]
    assert {"clip_top1", "clip_top5", "video_top1", "video_top5"} <= set(metrics)
    assert metrics["num_videos"] == 4 and all(0 <= metrics[k] <= 1 for k in ("clip_top1", "video_top1"))
    assert np.isfinite([h["loss"] for h in result["history"]]).all()
    from videotk.formats import open_cache

    assert json.loads((tmp_path / "epoch_000" / "classes.json").read_text()) == open_cache(clips / "train").classes


def test_multi_view_prediction_from_checkpoint_export_and_raw_video(tmp_path, clips):
    config = tiny("non_local", "train.epochs=1")
    train(config, str(clips / "train"), save_dir=tmp_path / "run")
    checkpoint = tmp_path / "run" / "epoch_000"
    metrics = evaluate(config, str(clips / "val"), checkpoint)
    assert metrics["num_clips"] == 3 * metrics["num_videos"]  # 3-crop testing in the tiny config

    assert predict(config, str(clips / "val"), checkpoint, tmp_path / "a.jsonl", top_k=2) == 4
    export(config, checkpoint, tmp_path / "exported")
    predict(config, str(clips / "val"), tmp_path / "exported", tmp_path / "b.jsonl", top_k=2)
    a = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [x["id"] for x in a] == [x["id"] for x in b] and [x["classes"] for x in a] == [x["classes"] for x in b]
    np.testing.assert_allclose([x["scores"] for x in a], [x["scores"] for x in b], atol=1e-5)
    assert len(a[0]["names"]) == 2

    from videotk.formats import open_cache

    record = open_cache(clips / "val")[0]
    [video] = (clips / "raw").rglob(f"{record['id']}.mp4")
    [(path, from_file)] = predict_files(config, checkpoint, [str(video)], top_k=2, options={"fps": 12.5})
    first = next(x for x in a if x["id"] == record["id"])
    assert path == str(video) and from_file["classes"] == first["classes"]
    np.testing.assert_allclose(from_file["scores"], first["scores"], atol=1e-5)


def test_cli_predicts_on_mp4_files_and_reports_pretrained_weights(tmp_path, clips):
    import paddle
    from click.testing import CliRunner

    from videotk.cli.main import cli

    paddle.save(paddle.vision.models.resnet18(pretrained=False).state_dict(), str(tmp_path / "resnet18.pdparams"))
    config = "tsn_tiny"
    run = CliRunner().invoke(cli, ["train", "tsn", "--shards", str(clips / "train"), "--config", config, "--epochs", "1",
                                   "-o", "model.base_width=64", "--pretrained", str(tmp_path / "resnet18.pdparams"),
                                   "--save-dir", str(tmp_path / "run"), "-q"])
    assert run.exit_code == 0, run.output
    assert "loaded 100 tensors, skipped 2 (fc.weight, fc.bias)" in run.output

    videos = sorted((clips / "raw").rglob("*.mp4"))[:2]
    (tmp_path / "broken.mp4").write_text("not a video")
    result = CliRunner().invoke(cli, ["predict", "tsn", "--weights", str(tmp_path / "run" / "epoch_000"), "--fps",
                                      "12.5", "--json", "--topk", "2", *map(str, videos), str(tmp_path / "broken.mp4")])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["file"] for line in lines] == [str(v) for v in videos]
    assert all(len(line["names"]) == 2 and line["scores"][0] >= line["scores"][1] for line in lines)
    assert "broken.mp4: not a video file" in result.output
