"""``vtk demo``: the main job end to end on built-in synthetic data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from .cache import _print_text
from .options import ProgressBar, report


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Keep the sources and caches here [default: a temporary folder, removed afterwards].")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes [default: all cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(workdir, workers, quiet):
    """Synthesize YouTube-8M and Kinetics sources, convert and decode them, inspect the caches, then
    train Attention LSTM briefly on the YouTube-8M cache, evaluate it on held-out videos and predict,
    then train a tiny TSN on the Kinetics cache and predict on an mp4 file.

    The Kinetics sources include missing and broken clips, to show how they are accounted for.
    """
    from ..formats import open_cache
    from ..formats.stats import describe
    from ..pipelines.kinetics import decode_kinetics
    from ..pipelines.synth_kinetics import synth_kinetics
    from ..pipelines.synth_youtube8m import synth_youtube8m
    from ..pipelines.youtube8m import convert_youtube8m

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vtk-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        _step("synth: YouTube-8M frame-level tfrecords and Kinetics mp4 clips")
        records = synth_youtube8m(root / "raw" / "yt8m", num_files=5, videos_per_file=64, seed=0)
        csv_path = synth_kinetics(root / "raw" / "kinetics", num_classes=4, clips_per_class=4, missing=2, bad=True,
                                  seed=0)
        click.echo(f"{len(records)} tfrecords in {root / 'raw' / 'yt8m'} (the last one is held out for evaluation)")
        click.echo(f"16 clips + 5 broken ones + 2 missing CSV rows in {csv_path.parent}")

        _step("convert youtube8m")
        bar = ProgressBar("shards", "shard", quiet)
        summary = convert_youtube8m(root / "raw" / "yt8m" / "train000[0-3].tfrecord", root / "cache" / "yt8m",
                                    workers=workers, progress=bar)
        bar.close()
        report(summary, "videos")
        report(convert_youtube8m(records[-1], root / "cache" / "yt8m-valid", workers=1), "videos")

        _step("decode kinetics (fps 25, short side 256, JPEG)")
        bar = ProgressBar("shards", "shard", quiet)
        summary = decode_kinetics(root / "raw" / "kinetics", root / "cache" / "kinetics", annotations=csv_path,
                                  videos_per_shard=4, workers=workers, progress=bar)
        bar.close()
        report(summary, "clips")
        click.echo("(the 5 broken clips are expected to fail: see errors.jsonl)")

        for name in ("yt8m", "kinetics"):
            _step(f"inspect cache/{name}")
            _print_text(describe(open_cache(root / "cache" / name)), top=5)
        _train_eval_predict(root, quiet)
        _train_kinetics_and_predict_a_clip(root, csv_path, quiet)
        click.echo(f"\ndemo finished in {root}" + ("" if workdir else " (removed)"))
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)


def _train_eval_predict(root: Path, quiet: bool) -> None:
    import json

    from ..trainers.config import load_config
    from ..trainers.loop import evaluate, predict, train
    from .train import TrainProgress

    config = load_config("attention_lstm", "attention_lstm_tiny", ["train.epochs=2"])
    train_cache, valid_cache = str(root / "cache" / "yt8m"), str(root / "cache" / "yt8m-valid")
    _step("train attention_lstm (config attention_lstm_tiny, 2 epochs)")
    train(config, train_cache, save_dir=root / "runs" / "attention_lstm", overwrite=True, callback=TrainProgress(quiet))
    checkpoint = root / "runs" / "attention_lstm" / "epoch_001"
    _step("eval on the held-out videos")
    click.echo(json.dumps(evaluate(config, valid_cache, checkpoint), indent=2))
    _step("predict (top 3 per video)")
    out = root / "predictions.jsonl"
    count = predict(config, valid_cache, checkpoint, out, top_k=3)
    lines = out.read_text().splitlines()
    click.echo("\n".join(lines[:3]) + f"\n... {count} videos in {out}")


def _train_kinetics_and_predict_a_clip(root: Path, csv_path: Path, quiet: bool) -> None:
    from ..trainers.config import load_config
    from ..trainers.loop import predict_files, train
    from .train import TrainProgress

    config = load_config("tsn", "tsn_tiny", ["train.epochs=2"])
    _step("train tsn (config tsn_tiny, 2 epochs) on the Kinetics cache")
    train(config, str(root / "cache" / "kinetics"), save_dir=root / "runs" / "tsn", overwrite=True,
          callback=TrainProgress(quiet))
    clip = next(p for p in sorted(csv_path.parent.rglob("*.mp4")) if p.stat().st_size > 20000)
    _step(f"predict on {clip.relative_to(csv_path.parent)}")
    [(_, result)] = predict_files(config, root / "runs" / "tsn" / "epoch_001", [str(clip)], top_k=2)
    click.echo(", ".join(f"{name} {score:.3f}" for name, score in zip(result["names"], result["scores"]))
               + f"  (the clip shows: {clip.parent.name}; 2 epochs on 16 clips is a first guess)")
