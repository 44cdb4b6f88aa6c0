"""A run's logs: readable lines in ``SAVE_DIR/train.log``, numbers in ``SAVE_DIR/metrics.jsonl``,
and their curves drawn by :func:`plot_run`.

``metrics.jsonl`` has one JSON object per line: ``{"event": "step", "epoch", "step", "loss", "lr",
"samples_per_s", "data_wait_s"}`` every ``train.log_every`` steps, ``{"event": "epoch", "epoch",
"step", "loss"}`` at the end of every epoch, and ``{"event": "eval", "epoch", "step", <metric>:
value, ...}`` after every evaluation. The same lines that the CLI prints go to ``train.log``.
A resumed run appends to both.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

LOG_FILE = "train.log"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "curves.png"


def step_line(event: dict) -> str:
    """``epoch 2 step 140: loss 0.4213, lr 0.001, 812.3 samples/s, data wait 0.12 s``."""
    return (f"epoch {event['epoch']} step {event['step']}: loss {event['loss']:.4f}, lr {event['lr']:.3g}, "
            f"{event['samples_per_s']:.1f} samples/s, data wait {event['data_wait_s']:.2f} s")


def epoch_line(event: dict) -> str:
    """One aligned line per epoch: mean loss, then every metric as ``name value``."""
    loss = "n/a" if event.get("loss") is None else f"{event['loss']:.4f}"
    parts = [f"epoch {event['epoch']:>3} done", f"loss {loss}"]
    parts += [f"{name} {_number(value)}" for name, value in (event.get("metrics") or {}).items()
              if not isinstance(value, (dict, list))]  # a curve (AR against AN) is in metrics.jsonl only
    if event.get("checkpoint"):
        parts.append(f"-> {event['checkpoint']}")
    return "  ".join(parts)


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return str(value)


class RunLog:
    """Appends the lines and records of one run to ``SAVE_DIR``; does nothing when ``save_dir`` is None
    (the ranks other than 0)."""

    def __init__(self, save_dir: str | Path | None):
        self.folder = Path(save_dir) if save_dir is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def line(self, text: str) -> None:
        if self.folder is not None:
            with open(self.folder / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def record(self, event: str, **values) -> None:
        if self.folder is not None:
            with open(self.folder / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps({"event": event, **values}) + "\n")


def read_metrics(save_dir: str | Path) -> list[dict]:
    """The records of ``SAVE_DIR/metrics.jsonl``; FileNotFoundError naming it when it is absent."""
    path = Path(save_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{save_dir}: no {METRICS_FILE} (is it the --save-dir of a vtk train run?)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
    return records


def plot_run(save_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the training loss (per logged step and per epoch) and every evaluation metric per epoch
    into a PNG (default ``SAVE_DIR/curves.png``); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(save_dir)
    steps = [r for r in records if r.get("event") == "step"]
    epochs = [r for r in records if r.get("event") == "epoch" and r.get("loss") is not None]
    evals = [r for r in records if r.get("event") == "eval"]
    metrics = sorted({k for r in evals for k, v in r.items() if k not in ("event", "epoch", "step")
                      and isinstance(v, (int, float)) and not k.startswith("num_")})
    fig, axes = plt.subplots(1, 1 + bool(metrics), figsize=(6 * (1 + bool(metrics)), 4), squeeze=False)
    loss_ax = axes[0][0]
    loss_ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="tab:blue", alpha=0.5, label="step")
    loss_ax.plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o-", color="tab:blue", label="epoch mean")
    loss_ax.set(title="training loss", xlabel="step", ylabel="loss")
    loss_ax.legend()
    if metrics:
        ax = axes[0][1]
        for name in metrics:
            points = [(r["epoch"], r[name]) for r in evals if name in r]
            ax.plot(*zip(*points), "o-", label=name)
        ax.set(title="evaluation", xlabel="epoch")
        ax.legend()
    fig.tight_layout()
    out = Path(out) if out else Path(save_dir) / PLOT_FILE
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
