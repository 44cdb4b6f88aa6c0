"""Checkpoints: one folder per epoch with everything a resumed run needs to continue identically.

``SAVE_DIR/epoch_003/``: ``model.pdparams``, ``optimizer.pdopt``, ``trainer.pdstate`` (epoch, global
step, LR schedule, the loss history, and the Python, NumPy and Paddle random states), the
resolved ``config.yaml`` and, when the training cache names its classes, ``classes.json``. The
state file is written last, so a folder without it is an epoch that did not finish. An exported
inference model is a folder with ``model.json`` (or ``model.pdmodel``), ``model.pdiparams`` and
``config.yaml``.

A run folder (``SAVE_DIR``) holds the epoch folders, the run's ``config.yaml``, ``train.log`` and
``metrics.jsonl``; :func:`check_run_folder` keeps two runs from mixing in one.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import paddle
import yaml

from .config import Config, dump

MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "trainer.pdstate"
CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.json"
EXPORT_PREFIX = "model"
EPOCH_PATTERN = re.compile(r"epoch_(\d{3,})$")
#: what a run writes in SAVE_DIR besides the epoch folders; nothing else there is removed
RUN_FILES = (CONFIG_FILE, "train.log", "metrics.jsonl", "curves.png")
RUN_FOLDERS = ("visualdl",)
_EPOCH_FILES = {MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE, CLASSES_FILE, "metrics.json",
                f".{STATE_FILE}.tmp"}


class CheckpointError(ValueError):
    """A path that holds no usable weights, or a checkpoint that does not fit the run."""


def epoch_dir(save_dir: str | Path, epoch: int) -> Path:
    return Path(save_dir) / f"epoch_{epoch:03d}"


def epoch_folders(save_dir: str | Path) -> list[Path]:
    """The ``epoch_NNN`` folders of a run folder, finished or not, in epoch order."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in save_dir.iterdir() if p.is_dir() and (m := EPOCH_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    """The newest finished epoch folder of ``save_dir`` (one with its state file), or None."""
    finished = [p for p in epoch_folders(save_dir) if (p / STATE_FILE).is_file()]
    return finished[-1] if finished else None


def resolve_resume(resume: str | Path, save_dir: str | Path) -> Path:
    """The checkpoint folder ``resume`` names: a folder, or ``latest`` for the newest finished
    epoch of ``save_dir``."""
    if str(resume) == "latest":
        latest = latest_checkpoint(save_dir)
        if latest is None:
            raise CheckpointError(f"--resume latest: {save_dir} holds no finished epoch to resume from")
        return latest
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path}: not a checkpoint folder (no {STATE_FILE}); pass SAVE_DIR/epoch_NNN "
                              "or --resume latest")
    return path


def check_run_folder(save_dir: str | Path, *, resuming: bool, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds another run's checkpoints, unless
    resuming it or ``overwrite`` (which removes that run's files, and nothing else)."""
    folders = epoch_folders(save_dir)
    if not folders or resuming:
        return
    if not overwrite:
        names = folders[0].name + (f" .. {folders[-1].name}" if len(folders) > 1 else "")
        raise CheckpointError(f"{save_dir} holds the checkpoints of another run ({names}); pass --resume latest "
                              "to continue it, --overwrite to replace it, or another --save-dir")
    clear_run(save_dir)


def clear_run(save_dir: str | Path) -> None:
    """Remove what a run wrote in ``save_dir``: its epoch folders and run files, nothing else."""
    save_dir = Path(save_dir)
    for folder in epoch_folders(save_dir):
        for item in folder.iterdir():
            if item.name in _EPOCH_FILES:
                item.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    for name in RUN_FILES:
        (save_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(save_dir / name, ignore_errors=True)


def prune_checkpoints(save_dir: str | Path, keep_last: int | None) -> list[Path]:
    """Remove all but the newest ``keep_last`` finished epoch folders; returns those removed."""
    if keep_last is None:
        return []
    finished = [p for p in epoch_folders(save_dir) if (p / STATE_FILE).is_file()]
    removed = finished[:-keep_last]
    for folder in removed:
        shutil.rmtree(folder)
    return removed


def save_checkpoint(path: Path, *, model, optimizer, scheduler, config: Config, epoch: int, step: int,
                    history: list[dict], classes: list[str] | None = None) -> Path:
    """Write the checkpoint of a finished ``epoch`` (0-based) into ``path``, the state file last.

    ``classes``: the training cache's class names, kept as ``classes.json`` for prediction.
    """
    path.mkdir(parents=True, exist_ok=True)
    if classes:
        (path / CLASSES_FILE).write_text(json.dumps(classes, ensure_ascii=False))
    paddle.save(model.state_dict(), str(path / MODEL_FILE))
    paddle.save(_renamed(optimizer.state_dict(), _parameter_names(model)), str(path / OPTIMIZER_FILE))
    dump(config, path / CONFIG_FILE)
    state = {
        "epoch": epoch,
        "step": step,
        "scheduler": scheduler.state_dict(),
        "history": history,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()},
    }
    tmp = path / f".{STATE_FILE}.tmp"
    tmp.write_bytes(pickle.dumps(state))
    tmp.replace(path / STATE_FILE)
    return path


def _parameter_names(model) -> dict[str, str]:
    """Paddle's unique parameter names (``linear_14.w_0``, which depend on how many layers the process
    built before) mapped to the model's structured names (``fc1.weight``)."""
    return {parameter.name: name for name, parameter in model.named_parameters()}


def _renamed(state: dict, names: dict[str, str]) -> dict:
    """Optimizer state whose keys start with a parameter name (``<name>_moment1_0``) renamed by ``names``."""
    out = {}
    for key, value in state.items():
        owner = max((n for n in names if key.startswith(n + "_")), key=len, default=None)
        out[names[owner] + key[len(owner):] if owner else key] = value
    return out


def check_resumable(path: Path, config: Config) -> None:
    """CheckpointError when the checkpoint ``path`` is of another model, model config or optimizer
    than ``config`` (the weights' names and shapes are checked when they are loaded)."""
    saved_file = path / CONFIG_FILE
    if not saved_file.is_file():
        return
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    current = config.to_dict()
    for section, keys in (("model", None), ("optimizer", ("name",))):
        old, new = saved.get(section) or {}, current[section]
        differ = [k for k in sorted(set(old) | set(new)) if (keys is None or k in keys) and old.get(k) != new.get(k)]
        if differ:
            changes = ", ".join(f"{section}.{k} {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:4])
            raise CheckpointError(f"{path} was trained with another config ({changes}); resume it with the config "
                                  f"saved in {saved_file}, or start a new run")


def load_checkpoint(path: str | Path, *, model, optimizer, scheduler) -> dict:
    """Restore model, optimizer, schedule and random states from ``path``; returns the trainer state."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path}: not a checkpoint folder (no {STATE_FILE}); pass SAVE_DIR/epoch_NNN")
    model.set_state_dict(fitting_weights(model, path))
    portable = {structured: unique for unique, structured in _parameter_names(model).items()}
    optimizer.set_state_dict(_renamed(paddle.load(str(path / OPTIMIZER_FILE)), portable))
    state = pickle.loads((path / STATE_FILE).read_bytes())
    scheduler.set_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    paddle.set_rng_state(state["rng"]["paddle"])
    return state


def read_classes(path: str | Path) -> list[str] | None:
    """The class names saved with a checkpoint or exported model, if any."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = folder / CLASSES_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def copy_classes(weights: str | Path, out_dir: Path) -> None:
    classes = read_classes(weights)
    if classes:
        (out_dir / CLASSES_FILE).write_text(json.dumps(classes, ensure_ascii=False))


def is_exported(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / f"{EXPORT_PREFIX}{ext}").is_file() for ext in (".json", ".pdmodel"))


def weights_file(path: str | Path) -> Path:
    """The ``.pdparams`` file of a checkpoint folder, or ``path`` itself when it is one."""
    path = Path(path)
    if is_exported(path):
        raise CheckpointError(f"{path} is an exported inference model; this needs the training weights: a "
                              "checkpoint folder (SAVE_DIR/epoch_NNN) or a .pdparams file")
    candidate = path / MODEL_FILE if path.is_dir() else path
    if not candidate.is_file() or candidate.suffix != ".pdparams":
        raise CheckpointError(f"{path}: no weights here; pass a checkpoint folder (SAVE_DIR/epoch_NNN), "
                              "a .pdparams file, or an exported model folder")
    return candidate


def fitting_weights(model, path: str | Path) -> dict:
    """The state dict at ``path``; CheckpointError naming the keys when it does not fit ``model``."""
    try:
        state = paddle.load(str(weights_file(path)))
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: cannot read the weights ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if list(state[k].shape) != list(expected[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape mismatch {wrong[:5]}); was it trained with this config?")
    return state


def load_weights(model, path: str | Path) -> list[str]:
    """Load weights into ``model``; raises naming the keys when they do not fit the model."""
    state = fitting_weights(model, path)
    model.set_state_dict(state)
    return sorted(state)
