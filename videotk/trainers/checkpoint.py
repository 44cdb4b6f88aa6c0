"""Checkpoints: one folder per epoch with everything a resumed run needs to continue identically.

``SAVE_DIR/epoch_003/``: ``model.pdparams``, ``optimizer.pdopt``, ``trainer.pdstate`` (epoch, global
step, LR schedule, the loss history, and the Python, NumPy and Paddle random states), the
resolved ``config.yaml`` and, when the training cache names its classes, ``classes.json``. An exported inference model is a folder with ``model.json`` (or
``model.pdmodel``), ``model.pdiparams`` and ``config.yaml``.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import paddle

from .config import dump

MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "trainer.pdstate"
CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.json"
EXPORT_PREFIX = "model"


class CheckpointError(ValueError):
    """A path that holds no usable weights."""


def epoch_dir(save_dir: str | Path, epoch: int) -> Path:
    return Path(save_dir) / f"epoch_{epoch:03d}"


def save_checkpoint(path: Path, *, model, optimizer, scheduler, config: dict, epoch: int, step: int,
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


def load_checkpoint(path: str | Path, *, model, optimizer, scheduler) -> dict:
    """Restore model, optimizer, schedule and random states from ``path``; returns the trainer state."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path}: not a checkpoint folder (no {STATE_FILE}); pass SAVE_DIR/epoch_NNN")
    model.set_state_dict(paddle.load(str(path / MODEL_FILE)))
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
    candidate = path / MODEL_FILE if path.is_dir() else path
    if not candidate.is_file() or candidate.suffix != ".pdparams":
        raise CheckpointError(f"{path}: no weights here; pass a checkpoint folder (SAVE_DIR/epoch_NNN), "
                              "a .pdparams file, or an exported model folder")
    return candidate


def load_weights(model, path: str | Path) -> list[str]:
    """Load weights into ``model``; raises naming the keys when they do not fit the model."""
    state = paddle.load(str(weights_file(path)))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if list(state[k].shape) != list(expected[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape mismatch {wrong[:5]}); was it trained with this config?")
    model.set_state_dict(state)
    return sorted(state)
