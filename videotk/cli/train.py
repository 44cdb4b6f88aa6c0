"""``vtk train``, ``vtk eval``, ``vtk predict``, ``vtk export``, ``vtk plot`` and ``vtk models``.

Each command parses its options, loads the config and calls one function of
:mod:`videotk.trainers.loop` inside :func:`~videotk.cli.errors.guarded`.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..trainers.logs import epoch_line, step_line  # no heavy imports: vtk --help stays instant
from .errors import Problem, guarded

SHARDS = click.option("--shards", required=True, type=click.Path(exists=True, file_okay=False),
                      help="Cache folder made by vtk convert / vtk decode.")
DEVICE = click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)


def config_options(func):
    """``--config NAME|FILE`` and repeated ``-o key=value``."""

    @click.option("--config", "config_file", metavar="NAME|FILE", default=None,
                  help="A bundled config's name (e.g. tsn_tiny; see `vtk models`) or a YAML file "
                       "[default: the model's seed config].")
    @click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config key, e.g. -o train.epochs=3 -o optimizer.learning_rate=0.01.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _config(model: str, config_file, overrides):
    """Load a config; every config or model-name problem is a usage error (exit 2)."""
    from ..trainers.config import load_config

    with guarded():
        return load_config(model, config_file, overrides)


def _saved_config(weights: str) -> Path | None:
    """The config saved beside ``weights`` (a checkpoint or exported folder), if there is one."""
    from ..trainers.checkpoint import CONFIG_FILE

    saved = Path(weights) / CONFIG_FILE if Path(weights).is_dir() else None
    return saved if saved is not None and saved.is_file() else None


class TrainProgress:
    """A progress bar per epoch; step lines written above it, one aligned line per epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar = quiet, None

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "epoch_start" and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=event["steps"], desc=f"epoch {event['epoch']}", unit="batch", leave=False,
                            file=sys.stderr, dynamic_ncols=True, disable=None)  # None: only on a terminal
        elif kind == "batch" and self.bar is not None:
            self.bar.update(1)
        elif kind == "step":
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{event['loss']:.4f}", refresh=False)
            self._write(step_line(event))
        elif kind == "notice":
            self._write(f"note: {event['message']}")
        elif kind == "pretrained":
            self._write(f"pretrained {event['path']}: loaded {len(event['loaded'])} tensors, skipped "
                        f"{len(event['skipped'])} ({', '.join(event['skipped'][:4]) or 'none'}), left "
                        f"{len(event['missing'])} as initialised ({', '.join(event['missing'][:4]) or 'none'})")
        elif kind == "epoch_end":
            self.close()
            click.echo(epoch_line(event))

    def _write(self, line: str) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command()
@click.argument("model")
@click.option("--shards", type=click.Path(exists=True, file_okay=False), default=None,
              help="Cache folder made by vtk convert / vtk decode.  [required]")
@click.option("--valid-shards", type=click.Path(exists=True, file_okay=False), default=None,
              help="Cache to evaluate on after every epoch.")
@config_options
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Shortcut for -o train.epochs=N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Shortcut for -o train.batch_size=N.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Shortcut for -o optimizer.learning_rate=X.")
@click.option("--seed", type=int, default=None, help="Shortcut for -o train.seed=N.")
@click.option("--save-dir", type=click.Path(file_okay=False), default="output", show_default=True,
              help="Checkpoints go to SAVE_DIR/epoch_NNN/ with the resolved config.yaml; train.log and "
                   "metrics.jsonl beside them.")
@click.option("--resume", default=None, metavar="CKPT|latest",
              help="Continue from a checkpoint folder SAVE_DIR/epoch_NNN, or from the newest finished epoch "
                   "in --save-dir with 'latest'.")
@click.option("--overwrite", is_flag=True,
              help="Start over in a --save-dir that holds another run (its checkpoints and logs are removed).")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local ImageNet ResNet weights (.pdparams, paddle.vision layout) for the backbone.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@DEVICE
@click.option("--gpus", metavar="IDS", default=None,
              help="Data-parallel training on these GPUs of this machine, one rank each (e.g. 0,1,2,3): runs "
                   "`python -m paddle.distributed.launch --gpus IDS --log_dir SAVE_DIR/launch vtk train ...` "
                   "with the other options as given and --device gpu. For several machines, start the launcher "
                   "on each yourself (see the README).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(model, shards, valid_shards, config_file, overrides, epochs, batch_size, lr, seed, save_dir, resume,
          overwrite, pretrained, print_config, device, gpus, quiet):
    """Train MODEL (see `vtk models`) on a cache.

    The config is the model's seed config, or --config NAME|FILE, then -o overrides and the
    shortcuts. A checkpoint is written after every epoch; --resume continues a run so that its
    losses equal those of an uninterrupted run with the same seed. Ctrl-C stops the run, keeping
    every finished epoch. Under paddle.distributed.launch (or --gpus), every rank trains on its
    share of the data and rank 0 alone writes the checkpoints, logs and curves.
    """
    shortcuts = [f"{key}={value}" for key, value in (("train.epochs", epochs), ("train.batch_size", batch_size),
                                                      ("optimizer.learning_rate", lr), ("train.seed", seed))
                 if value is not None]
    config = _config(model, config_file, [*overrides, *shortcuts])
    if print_config:
        from ..trainers.config import to_yaml

        click.echo(to_yaml(config), nl=False)
        return
    if not shards:
        raise click.UsageError("Missing option '--shards'.")
    if gpus is not None:
        given = click.get_current_context().get_parameter_source("device") == click.core.ParameterSource.COMMANDLINE
        _launch_on_gpus(gpus, save_dir, cpu_given=given and device == "cpu")
    from ..trainers import runtime
    from ..trainers.loop import train as run

    progress = TrainProgress(quiet)
    try:
        with guarded(lambda: _interrupted_training(save_dir)):
            result = run(config, shards, valid_shards=valid_shards, save_dir=save_dir, resume=resume,
                         overwrite=overwrite, pretrained=pretrained, device=device, callback=progress)
    finally:
        progress.close()
    if not runtime.is_main():
        click.echo(f"rank {runtime.rank()}: trained {len(result['history'])} steps; rank 0 wrote the checkpoints")
        return
    click.echo(f"trained {len(result['history'])} steps; checkpoints in {save_dir}; curves in {_curves(save_dir)}")


def _launch_on_gpus(gpus: str, save_dir: str, *, cpu_given: bool) -> None:
    """Replace this process by ``paddle.distributed.launch`` running this same command on ``gpus``;
    a Paddle without GPUs, an id it has not, ``--device cpu``, or a process the launcher started
    is a usage error (exit 2)."""
    import os

    if cpu_given:
        raise Problem(f"--gpus {gpus} trains on GPUs: leave out --device cpu")
    if "PADDLE_TRAINER_ID" in os.environ:
        raise Problem(f"--gpus {gpus}: this command already runs under paddle.distributed.launch; leave out --gpus")
    ids = _gpu_ids(gpus)
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        raise Problem(f"--gpus {gpus}: this Paddle is the CPU build and has no GPU support; install "
                      "paddlepaddle-gpu (pip install -e '.[gpu]'), or leave out --gpus to train on the CPU")
    count = paddle.device.cuda.device_count()
    if count == 0:
        raise Problem(f"--gpus {gpus}: Paddle was built with CUDA but sees no GPU on this machine")
    if max(ids) >= count:
        raise Problem(f"--gpus {gpus}: Paddle sees {count} GPU{'s' if count != 1 else ''} here (ids 0..{count - 1})")
    command = launcher_command(sys.argv[1:], gpus, save_dir)
    os.execv(command[0], command)


def _gpu_ids(gpus: str) -> list[int]:
    """The GPU ids of ``--gpus 0,1,3``; a usage error for anything else."""
    try:
        ids = [int(part) for part in gpus.split(",")]
    except ValueError:
        ids = []
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise Problem(f"--gpus {gpus}: expected distinct GPU ids separated by commas, e.g. --gpus 0,1,2,3")
    return ids


def launcher_command(argv: list[str], gpus: str, save_dir: str) -> list[str]:
    """The command that runs ``vtk`` with ``argv`` (this process's arguments) on ``gpus`` under
    ``paddle.distributed.launch``: ``--gpus`` taken out, ``--device gpu`` added, the launcher's
    per-rank logs in ``SAVE_DIR/launch``."""
    import shutil

    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            kept.append(arg)
    vtk = shutil.which("vtk") or str(Path(sys.executable).with_name("vtk"))
    return [sys.executable, "-m", "paddle.distributed.launch", "--gpus", gpus, "--log_dir",
            str(Path(save_dir) / "launch"), vtk, *kept, "--device", "gpu"]


def _interrupted_training(save_dir: str) -> str:
    """What Ctrl-C leaves: the finished epochs, and how to go on."""
    from ..trainers.checkpoint import latest_checkpoint

    latest = latest_checkpoint(save_dir)
    staged = sorted((p for p in Path(save_dir).glob("*/epoch_*") if latest_checkpoint(p.parent) is not None),
                    key=lambda p: p.stat().st_mtime) if latest is None and Path(save_dir).is_dir() else []
    if latest is None and staged:
        stage = staged[-1].parent
        return (f"interrupted: the finished epochs up to {stage.name}/{latest_checkpoint(stage).name} are kept in "
                f"{save_dir}; run the same command with --resume latest to continue")
    if latest is None:
        return (f"interrupted before the first epoch finished: no checkpoint in {save_dir}; run the same command "
                "to start again")
    return (f"interrupted: the finished epochs up to {latest.name} are kept in {save_dir}; run the same command with "
            "--resume latest to continue")


def _curves(save_dir: str) -> str:
    """The curves of the run (of each stage's run, for a model trained in stages)."""
    from ..trainers.logs import METRICS_FILE, plot_run

    runs = [Path(save_dir)] if (Path(save_dir) / METRICS_FILE).is_file() else \
        sorted(p.parent for p in Path(save_dir).glob(f"*/{METRICS_FILE}"))
    drawn = []
    for run in runs:
        try:
            drawn.append(str(plot_run(run)))
        except FileNotFoundError:
            pass
    return ", ".join(drawn) or "(none: no step was logged)"


@click.command("eval")
@click.argument("model")
@SHARDS
@click.option("--weights", required=True, type=click.Path(exists=True),
              help="Checkpoint folder, .pdparams file, or a folder made by vtk export.")
@config_options
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics JSON here [default: metrics.json beside the weights].")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Proposal models: draw the AR@AN curve into this PNG.")
@DEVICE
def evaluate(model, shards, weights, config_file, overrides, out, plot_file, device):
    """Evaluate MODEL's weights on a cache; prints the metrics as JSON (a curve, such as AR
    against AN for proposals, only goes into the file)."""
    from ..trainers.loop import evaluate as run

    config = _config(model, config_file or _saved_config(weights), overrides)
    with guarded():
        metrics = run(config, shards, weights, device=device)
    if plot_file and "curve" not in metrics:
        raise Problem(f"--plot: {model}'s metrics have no curve to draw (proposal models have AR against AN)")
    out = Path(out) if out else (Path(weights) if Path(weights).is_dir() else Path(weights).parent) / "metrics.json"
    with guarded():
        out.write_text(json.dumps(metrics, indent=2) + "\n")
        if plot_file:
            from ..evaluators.proposals import plot_ar_an

            plot_ar_an(metrics["curve"], plot_file)
    click.echo(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}, indent=2))
    if plot_file:
        click.echo(f"AR@AN curve: {plot_file}")


@click.command()
@click.argument("model")
@click.option("--weights", required=True, type=click.Path(exists=True),
              help="Checkpoint folder, .pdparams file, or a folder made by vtk export.")
@click.option("--shards", type=click.Path(exists=True, file_okay=False), default=None,
              help="Cache folder to predict on (one JSON line per video to --out).")
@click.option("--video", "--features", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Raw input files to predict on directly: video files, or feature files for models that read "
                   "them; repeat, or list several after the options.")
@click.argument("more_files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--topk", type=click.IntRange(min=1), default=None, help="Results per video [default: 20 for "
              "caches, 5 for files].")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="With --shards: the predictions file (JSON lines, or the task's result format).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=25.0, show_default=True,
              help="With video files: resample as the training cache was decoded.")
@click.option("--segment", nargs=2, type=float, default=None, metavar="START END",
              help="With raw files: only this part of each input, in seconds (models that read segments).")
@click.option("--json", "as_json", is_flag=True, help="With raw files: print one JSON object per file.")
@config_options
@DEVICE
def predict(model, weights, shards, files, more_files, topk, out, fps, segment, as_json, config_file, overrides,
            device):
    """Predictions for every video of a cache (--shards, --out), or for raw files (--video / --features).

    A classifier's scores are averaged over its test views (e.g. 30 views for Non-local).
    """
    config = _config(model, config_file or _saved_config(weights), overrides)
    files = [*files, *more_files]
    if bool(shards) == bool(files):
        raise click.UsageError("give either --shards CACHE (with --out) or raw files (--video FILE ...)")
    if files:
        if segment and not segment[0] < segment[1]:
            raise click.BadParameter(f"{segment[0]:g} {segment[1]:g}: the end must come after the start",
                                     param_hint="--segment")
        options = {"fps": fps, **({"segment": tuple(segment)} if segment else {})}
        _predict_files(config, weights, files, topk or 5, options, as_json, device)
        return
    if not out:
        raise click.UsageError("--shards needs --out FILE")
    from ..trainers.loop import predict as run

    with guarded():
        count = run(config, shards, weights, out, top_k=topk or 20, device=device)
    click.echo(f"wrote {count} predictions to {out}")


def _predict_files(config, weights: str, paths: list[str], top_k: int, options: dict, as_json: bool,
                   device: str) -> None:
    """Predict on raw files; each one that cannot be read is reported and makes the exit status 1."""
    from ..trainers.loop import predict_files
    from ..trainers.tasks import make_task

    with guarded():
        results = predict_files(config, weights, paths, top_k=top_k, options=options, device=device)
    task, failed = make_task(config), 0
    for path, result in results:
        if isinstance(result, str):
            click.echo(f"{path}: {result}", err=True)
            failed += 1
        else:
            click.echo(json.dumps({"file": path, **result}) if as_json else f"{path}: {task.record_line(result)}")
    if failed:
        sys.exit(1)


@click.command()
@click.argument("model")
@click.option("--weights", required=True, type=click.Path(exists=True), help="Checkpoint folder or .pdparams file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the inference model.")
@config_options
def export(model, weights, out, config_file, overrides):
    """Save MODEL with its weights as a Paddle inference model (paddle.jit.save) plus its config."""
    from ..trainers.loop import export as run

    config = _config(model, config_file or _saved_config(weights), overrides)
    with guarded():
        folder = run(config, weights, out)
    click.echo(f"exported {model} to {folder}")


@click.command()
@click.argument("save_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="PNG file to write [default: SAVE_DIR/curves.png].")
def plot(save_dir, out):
    """Draw the loss and metric curves of a training run (SAVE_DIR/metrics.jsonl) into a PNG."""
    from ..trainers.logs import plot_run

    try:
        click.echo(f"curves: {plot_run(save_dir, out)}")
    except FileNotFoundError as exc:
        raise Problem(str(exc)) from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--params", is_flag=True, help="Also build each model at its default config and count its parameters.")
def models(as_json, params):
    """Every registered model with its task, expected input, and bundled configs (for --config)."""
    from ..models import list_models, model_info
    from ..trainers.config import bundled_configs

    bundled = bundled_configs()
    infos = [model_info(name) for name in list_models()]
    for info in infos:
        default = Path(info["config"]).stem
        info["configs"] = [default] + sorted(c for c in bundled if c.startswith(f"{info['name']}_") and c != default)
        if params:
            info["parameters"] = _parameters(info["name"])
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        click.echo(f"{info['name']}\n  task:    {info['task']}\n  input:   {info['inputs']}\n"
                   f"  configs: {info['configs'][0]} (default, the seed's settings)"
                   + "".join(f", {c}" for c in info["configs"][1:]) + f"\n  {info['description']}")
        if params:
            click.echo(f"  parameters at the default config: {info['parameters']:,}")


def _parameters(model: str) -> int:
    """Trainable parameters of ``model`` built with its default config's model arguments."""
    from ..models import count_parameters
    from ..trainers.loop import build_model

    return count_parameters(build_model(_config(model, None, ())))
