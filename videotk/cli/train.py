"""``vtk train``, ``vtk eval``, ``vtk predict``, ``vtk export`` and ``vtk models``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

SHARDS = click.option("--shards", required=True, type=click.Path(exists=True, file_okay=False),
                      help="Cache folder made by vtk convert / vtk decode.")
DEVICE = click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)


def config_options(func):
    """``--config FILE`` and repeated ``-o key=value``."""

    @click.option("--config", "config_file", metavar="NAME|FILE", default=None,
                  help="A bundled config's name (e.g. tsn_tiny; see `vtk models`) or a YAML file "
                       "[default: the model's seed config].")
    @click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config key, e.g. -o train.epochs=3 -o optimizer.learning_rate=0.01.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _config(model: str, config_file, overrides) -> dict:
    """Load a config, turning every config or model-name problem into a usage error (exit 2)."""
    from ..models.registry import UnknownModelError
    from ..trainers.config import ConfigError, load_config

    try:
        return load_config(model, config_file, overrides)
    except (ConfigError, UnknownModelError) as exc:
        raise click.UsageError(str(exc)) from exc


def _exported_config(weights: str):
    """The config saved inside an exported model folder, if ``weights`` is one."""
    from ..trainers.checkpoint import CONFIG_FILE, is_exported

    return Path(weights) / CONFIG_FILE if is_exported(weights) else None


def _run(call):
    """Run a trainer call; configuration, weight and device problems are usage errors."""
    from ..trainers.checkpoint import CheckpointError
    from ..trainers.config import ConfigError
    from ..trainers.loop import DeviceError

    try:
        return call()
    except (ConfigError, CheckpointError, DeviceError) as exc:
        raise click.UsageError(str(exc)) from exc


class TrainProgress:
    """Progress bar per epoch and one log line per ``log_every`` steps and per epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar = quiet, None

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "epoch_start" and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=event["steps"], desc=f"epoch {event['epoch']}", unit="batch", leave=False)
        elif kind == "batch" and self.bar is not None:
            self.bar.update(1)
        elif kind == "step":
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{event['loss']:.4f}")
            click.echo(f"epoch {event['epoch']} step {event['step']}: loss {event['loss']:.4f}, lr {event['lr']:.3g}, "
                       f"{event['samples_per_s']:.1f} samples/s, data wait {event['data_wait_s']:.2f} s", err=True)
        elif kind == "pretrained":
            click.echo(f"pretrained {event['path']}: loaded {len(event['loaded'])} tensors, skipped "
                       f"{len(event['skipped'])} ({', '.join(event['skipped'][:4]) or 'none'}), left "
                       f"{len(event['missing'])} as initialised ({', '.join(event['missing'][:4]) or 'none'})", err=True)
        elif kind == "epoch_end":
            if self.bar is not None:
                self.bar.close()
            metrics = json.dumps(event["metrics"]) if event["metrics"] else ""
            click.echo(f"epoch {event['epoch']} done: mean loss {event['loss']:.4f} {metrics} -> {event['checkpoint']}")


@click.command()
@click.argument("model")
@SHARDS
@click.option("--valid-shards", type=click.Path(exists=True, file_okay=False), default=None,
              help="Cache to evaluate on after every epoch.")
@config_options
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Shortcut for -o train.epochs=N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Shortcut for -o train.batch_size=N.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Shortcut for -o optimizer.learning_rate=X.")
@click.option("--seed", type=int, default=None, help="Shortcut for -o train.seed=N.")
@click.option("--save-dir", type=click.Path(file_okay=False), default="output", show_default=True,
              help="Checkpoints go to SAVE_DIR/epoch_NNN/ with the resolved config.yaml.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), default=None,
              help="Continue from a checkpoint folder SAVE_DIR/epoch_NNN.")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local ImageNet ResNet weights (.pdparams, paddle.vision layout) for the backbone.")
@DEVICE
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(model, shards, valid_shards, config_file, overrides, epochs, batch_size, lr, seed, save_dir, resume,
          pretrained, device, quiet):
    """Train MODEL (see `vtk models`) on a cache.

    The config is configs/<model>.yaml (the seed's settings) or --config FILE, then -o overrides and
    the shortcuts. A checkpoint is written after every epoch; --resume continues a run so that its
    losses equal those of an uninterrupted run with the same seed.
    """
    shortcuts = [f"{key}={value}" for key, value in (("train.epochs", epochs), ("train.batch_size", batch_size),
                                                      ("optimizer.learning_rate", lr), ("train.seed", seed))
                 if value is not None]
    config = _config(model, config_file, [*overrides, *shortcuts])
    from ..trainers.loop import train as run

    result = _run(lambda: run(config, shards, valid_shards=valid_shards, save_dir=save_dir, resume=resume,
                              pretrained=pretrained, device=device, callback=TrainProgress(quiet)))
    click.echo(f"trained {len(result['history'])} steps; checkpoints in {save_dir}")


@click.command("eval")
@click.argument("model")
@SHARDS
@click.option("--weights", required=True, type=click.Path(exists=True), help="Checkpoint folder or .pdparams file.")
@config_options
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics JSON here [default: metrics.json beside the weights].")
@DEVICE
def evaluate(model, shards, weights, config_file, overrides, out, device):
    """Evaluate MODEL's weights on a cache; prints the metrics as JSON."""
    from ..trainers.checkpoint import CONFIG_FILE
    from ..trainers.loop import evaluate as run

    saved = Path(weights) / CONFIG_FILE if Path(weights).is_dir() else None
    config = _config(model, config_file or (saved if saved and saved.is_file() else None), overrides)
    metrics = _run(lambda: run(config, shards, weights, device=device))
    out = Path(out) if out else (Path(weights) if Path(weights).is_dir() else Path(weights).parent) / "metrics.json"
    text = json.dumps(metrics, indent=2)
    out.write_text(text + "\n")
    click.echo(text)


@click.command()
@click.argument("model")
@click.option("--weights", required=True, type=click.Path(exists=True),
              help="Checkpoint folder, .pdparams file, or a folder made by vtk export.")
@click.option("--shards", type=click.Path(exists=True, file_okay=False), default=None,
              help="Cache folder to predict on (one JSON line per video to --out).")
@click.option("--video", "videos", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Video files to predict on directly (Kinetics models); repeat or list several.")
@click.argument("more_videos", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--topk", type=click.IntRange(min=1), default=None, help="Classes per video [default: 20 for "
              "caches, 5 for videos].")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON lines: id, classes, scores.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=25.0, show_default=True,
              help="With --video: resample as the training cache was decoded.")
@click.option("--json", "as_json", is_flag=True, help="With --video: print JSON.")
@config_options
@DEVICE
def predict(model, weights, shards, videos, more_videos, topk, out, fps, as_json, config_file, overrides, device):
    """Top-k classes and scores of every video in a cache (--shards, --out), or of video files (--video).

    Scores are averaged over the model's test views (e.g. 30 views for Non-local).
    """
    from ..trainers.checkpoint import CONFIG_FILE

    saved = _exported_config(weights) or (Path(weights) / CONFIG_FILE if Path(weights).is_dir() else None)
    config = _config(model, config_file or (saved if saved and saved.is_file() else None), overrides)
    videos = [*videos, *more_videos]
    if bool(shards) == bool(videos):
        raise click.UsageError("give either --shards CACHE (with --out) or --video FILE ...")
    if videos:
        _predict_videos(config, weights, videos, topk or 5, fps, as_json, device)
        return
    if not out:
        raise click.UsageError("--shards needs --out FILE.jsonl")
    from ..trainers.loop import predict as run

    count = _run(lambda: run(config, shards, weights, out, top_k=topk or 20, device=device))
    click.echo(f"wrote {count} predictions to {out}")


def _predict_videos(config: dict, weights: str, videos: list[str], top_k: int, fps: float, as_json: bool,
                    device: str) -> None:
    """Decode each file with the same ffmpeg path as vtk decode, then predict over its test views."""
    import sys

    from ..pipelines.ffmpeg import DecodeError, decode_clip
    from ..trainers.loop import predict_records

    if config["data"].get("task") != "kinetics":
        raise click.UsageError(f"--video needs a model trained on video frames; {config['model']['name']} "
                               "reads feature caches")
    decoded, failed = {}, 0
    for path in videos:
        try:
            decoded[path] = decode_clip(path, fps=fps, short_side=config["data"].get("short_side") or 0)
        except DecodeError as exc:
            click.echo(f"{path}: {exc.reason}", err=True)
            failed += 1
    results = _run(lambda: predict_records(config, weights, list(decoded.values()), top_k=top_k, device=device))
    for path, result in zip(decoded, results):
        if as_json:
            click.echo(json.dumps({"video": path, **result}))
            continue
        labels = result.get("names") or [str(c) for c in result["classes"]]
        click.echo(f"{path}: " + ", ".join(f"{name} {score:.3f}" for name, score in zip(labels, result["scores"])))
    if failed:
        sys.exit(1)


@click.command()
@click.argument("model")
@click.option("--weights", required=True, type=click.Path(exists=True), help="Checkpoint folder or .pdparams file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the inference model.")
@config_options
def export(model, weights, out, config_file, overrides):
    """Save MODEL with its weights as a Paddle inference model (paddle.jit.save) plus its config."""
    from ..trainers.checkpoint import CONFIG_FILE
    from ..trainers.loop import export as run

    saved = Path(weights) / CONFIG_FILE if Path(weights).is_dir() else None
    config = _config(model, config_file or (saved if saved and saved.is_file() else None), overrides)
    folder = _run(lambda: run(config, weights, out))
    click.echo(f"exported {model} to {folder}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--params", is_flag=True, help="Also build each model at its default config and count its parameters.")
def models(as_json, params):
    """Every registered model with its task, expected input and default config."""
    from ..models import list_models, model_info

    infos = [model_info(name) for name in list_models()]
    if params:
        for info in infos:
            info["parameters"] = _parameters(info["name"])
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        click.echo(f"{info['name']}\n  task:   {info['task']}\n  input:  {info['inputs']}\n"
                   f"  config: configs/{info['config']}\n  {info['description']}")
        if params:
            click.echo(f"  parameters at the default config: {info['parameters']:,}")


def _parameters(model: str) -> int:
    """Trainable parameters of ``model`` built with its default config's model arguments."""
    from ..models import count_parameters
    from ..trainers.loop import build_model

    return count_parameters(build_model(_config(model, None, ())))
